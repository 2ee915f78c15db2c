-- Rejected rows; their reasons, one row each, are in stg_quarantine_reasons.
select
    cast(ingest_date as date)                     as ingest_date,
    review_id,
    text,
    title,
    rating_raw,
    {{ safe_cast_integer('rating_raw') }}         as rating,
    product_id,
    department,
    class                                         as product_class,
    coalesce(source, {{ regex_group('source_file', 'source=([^/]+)/') }})
                                                  as source,
    source_file
from {{ lake_source('quarantine') }} as quarantine
where exists (  -- the date's committed batch only
    select 1
    from {{ ref('stg_committed_batches') }} as committed
    where committed.ingest_date = quarantine.ingest_date
      and committed.batch_id = quarantine.batch_id
)
