-- One row per quarantined row and failed check.
select
    cast(quarantine.ingest_date as date)          as ingest_date,
    quarantine.review_id,
    quarantine.source_file,
    reason
from {{ lake_source('quarantine') }} as quarantine
{{ unnest_array('quarantine', 'reasons', 'reason') }}
