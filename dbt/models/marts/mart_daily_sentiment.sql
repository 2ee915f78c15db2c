-- ingest_date x department x label: how many documents, their share of the day's department, and
-- the mean confidence, from the current predictions of each day (the monitoring report's input).
with scored as (
    select
        ingest_date,
        coalesce(department, '(none)')      as department,
        predicted_label,
        confidence,
        model_version
    from {{ ref('fct_predictions') }}
    where is_current
),

counted as (
    select
        ingest_date,
        department,
        predicted_label                     as label,
        count(*)                            as n_documents,
        avg(confidence)                     as mean_confidence,
        max(model_version)                  as model_version
    from scored
    group by 1, 2, 3
)

select
    ingest_date,
    department,
    label,
    cast(n_documents as bigint)                                                        as n_documents,
    cast(n_documents as {{ type_double() }})
        / sum(n_documents) over (partition by ingest_date, department)                   as share_of_department,
    mean_confidence,
    model_version
from counted
