select
    cast(ingest_date as date)          as ingest_date,
    review_id,
    text,
    title,
    rating,
    product_id,
    department,
    class                              as product_class,
    {{ dbt.length('text') }}           as text_length,
    source_file,
    text_hash
from {{ lake_source('curated') }} as curated
