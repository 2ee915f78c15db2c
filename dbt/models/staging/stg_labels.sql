select
    cast(ingest_date as date)          as ingest_date,
    review_id,
    cast(rating as integer)            as rating,
    label                              as true_label
from {{ source('lake', 'labels') }}
