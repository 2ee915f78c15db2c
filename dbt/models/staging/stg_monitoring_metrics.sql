-- One row per figure a stage run or a monitoring report published (spark_jobs/metrics.py).
select
    run_id,
    producer,
    ingest_date,
    {{ safe_cast_date('ingest_date') }}           as batch_date,
    {{ iso_timestamp('recorded_at') }}            as recorded_at,
    section,
    metric,
    value,
    unit,
    source,
    department,
    product_id,
    label,
    model_name,
    {{ safe_cast_integer('model_version') }}      as model_version,
    severity,
    threshold,
    message
from {{ lake_source('metrics') }} as metrics
