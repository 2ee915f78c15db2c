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
where exists (  -- the date's committed batch only
    select 1
    from {{ ref('stg_committed_batches') }} as committed
    where committed.ingest_date = predictions.ingest_date
      and committed.batch_id = predictions.batch_id
)
