select
    cast(ingest_date as date)          as ingest_date,
    review_id,
    text,
    title,
    cast(rating as integer)            as rating,
    product_id,
    department,
    class                              as product_class,
    source_file,
    text_hash
from {{ source('lake', 'curated') }}
