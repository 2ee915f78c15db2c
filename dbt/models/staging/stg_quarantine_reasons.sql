-- One row per quarantined row and failed check.
select
    cast(quarantine.ingest_date as date)          as ingest_date,
    quarantine.review_id,
    quarantine.source_file,
    reason
from {{ lake_source('quarantine') }} as quarantine
{{ unnest_array('quarantine', 'reasons', 'reason') }}
where exists (  -- the date's committed batch only
    select 1
    from {{ ref('stg_committed_batches') }} as committed
    where committed.ingest_date = quarantine.ingest_date
      and committed.batch_id = quarantine.batch_id
)
