-- Every prediction that has ground truth, champion and shadow alike, tagged with how it was scored,
-- except the documents that model was fitted on: quality is measured on data the model did not learn.
with scored as (
    select cast('champion' as varchar) as scored_as, ingest_date, review_id, model_name, model_version,
           predicted_label, seen_in_training
    from {{ ref('stg_predictions') }}
    union all
    select cast('shadow' as varchar) as scored_as, ingest_date, review_id, model_name, model_version,
           predicted_label, seen_in_training
    from {{ ref('stg_shadow_predictions') }}
)

select
    scored.scored_as,
    scored.ingest_date,
    scored.review_id,
    scored.model_name,
    scored.model_version,
    scored.predicted_label,
    labels.true_label
from scored
join {{ ref('stg_labels') }} as labels
    on  labels.review_id = scored.review_id
    and labels.ingest_date = scored.ingest_date
where scored.seen_in_training = false  -- null (scope unknown) is left out too
