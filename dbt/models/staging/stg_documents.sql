select
    cast(ingest_date as date)          as ingest_date,
    review_id,
    text,
    title,
    rating,
    product_id,
    department,
    class                              as product_class,
    -- files written before curated had a source column: the landed path names it (.../source=S/...)
    coalesce(source, {{ regex_group('source_file', 'source=([^/]+)/') }})
                                       as source,
    {{ dbt.length('text') }}           as text_length,
    source_file,
    text_hash
from {{ lake_source('curated') }} as curated
where exists (  -- the date's committed batch only
    select 1
    from {{ ref('stg_committed_batches') }} as committed
    where committed.ingest_date = curated.ingest_date
      and committed.batch_id = curated.batch_id
)
