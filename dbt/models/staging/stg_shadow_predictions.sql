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
where exists (  -- the date's committed batch only
    select 1
    from {{ ref('stg_committed_batches') }} as committed
    where committed.ingest_date = predictions_shadow.ingest_date
      and committed.batch_id = predictions_shadow.batch_id
)
