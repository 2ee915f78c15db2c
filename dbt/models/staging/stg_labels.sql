select
    cast(ingest_date as date)          as ingest_date,
    review_id,
    rating,
    label                              as true_label
from {{ lake_source('labels') }} as labels
