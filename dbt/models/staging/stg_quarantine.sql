select
    cast(ingest_date as date)          as ingest_date,
    review_id,
    text,
    rating_raw,
    source_file,
    reasons
from {{ source('lake', 'quarantine') }}
