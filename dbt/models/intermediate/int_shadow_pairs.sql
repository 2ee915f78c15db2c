-- Each shadow prediction beside the champion's current prediction of the same document, with the
-- ground truth when it is known and neither model was fitted on the document (so that the two
-- accuracies compare the models on data both did not learn). That condition is not in the label
-- join: there, a condition on columns of both joined tables made DuckDB fall back to a nested-loop
-- join over every label of the day; stg_labels is unique per (review_id, ingest_date), so the
-- rows are the same.
select
    shadow.ingest_date,
    shadow.review_id,
    champion.model_name                 as champion_model_name,
    champion.model_version              as champion_version,
    champion.predicted_label            as champion_label,
    champion.confidence                 as champion_confidence,
    shadow.model_name                   as challenger_model_name,
    shadow.model_version                as challenger_version,
    shadow.predicted_label              as challenger_label,
    shadow.confidence                   as challenger_confidence,
    case when shadow.seen_in_training = false and champion.seen_in_training = false
         then labels.true_label end     as true_label  -- null (scope unknown) never judges a model
from {{ ref('stg_shadow_predictions') }} as shadow
join {{ ref('int_current_predictions') }} as champion
    on  champion.review_id = shadow.review_id
    and champion.ingest_date = shadow.ingest_date
left join {{ ref('stg_labels') }} as labels
    on  labels.review_id = shadow.review_id
    and labels.ingest_date = shadow.ingest_date
