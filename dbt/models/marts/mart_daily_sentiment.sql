-- ingest_date x source x department x label: how many documents, their share of the day's
-- department (within its source: tweets have no departments), and the mean confidence, from the
-- current predictions of each day.
with scored as (
    select
        ingest_date,
        source,
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
        source,
        department,
        predicted_label                     as label,
        count(*)                            as n_documents,
        avg(confidence)                     as mean_confidence,
        max(model_version)                  as model_version
    from scored
    group by 1, 2, 3, 4
)

select
    ingest_date,
    source,
    department,
    label,
    cast(n_documents as bigint)                                                        as n_documents,
    cast(n_documents as {{ type_double() }})
        / sum(n_documents) over (partition by ingest_date, source, department)           as share_of_department,
    mean_confidence,
    model_version
from counted
