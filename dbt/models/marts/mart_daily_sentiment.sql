-- ingest_date x department x label: how many documents, their share of the day's department, and
-- the mean confidence, from the current predictions of each day.
with scored as (
    select p.ingest_date, coalesce(d.department, '(none)') as department, p.predicted_label, p.confidence
    from {{ ref('int_current_predictions') }} p
    join {{ ref('stg_documents') }} d using (review_id, ingest_date)
)
select
    ingest_date,
    department,
    predicted_label                                                        as label,
    count(*)                                                               as n_documents,
    cast(count(*) as double)
        / sum(count(*)) over (partition by ingest_date, department)       as share_of_department,
    avg(confidence)                                                        as mean_confidence
from scored
group by ingest_date, department, predicted_label
