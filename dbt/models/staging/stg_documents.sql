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
