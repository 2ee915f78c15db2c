-- The champion's predictions: one row per document, ingest_date and model version.
select
    cast(ingest_date as date)          as ingest_date,
    review_id,
    label                              as predicted_label,
    confidence,
    score_negative,
    score_neutral,
    score_positive,
    model_name,
    model_version,
    run_id,
    seen_in_training                   -- null: the version's training scope is unknown
from {{ lake_source('predictions') }} as predictions
