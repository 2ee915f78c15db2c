select
    cast(ingest_date as date)          as ingest_date,
    review_id,
    rating,
    label                              as true_label
from {{ lake_source('labels') }} as labels
where exists (  -- the date's committed batch only
    select 1
    from {{ ref('stg_committed_batches') }} as committed
    where committed.ingest_date = labels.ingest_date
      and committed.batch_id = labels.batch_id
)
