-- A challenger's predictions on the same documents (shadow scoring); empty until one runs.
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
from {{ lake_source('predictions_shadow') }} as predictions_shadow
