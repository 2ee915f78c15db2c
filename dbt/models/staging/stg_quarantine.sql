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
    source_file
from {{ lake_source('quarantine') }} as quarantine
