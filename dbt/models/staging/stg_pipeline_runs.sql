select
    run_id,
    stage,
    ingest_date,
    {{ safe_cast_date('ingest_date') }}           as batch_date,
    status,
    {{ iso_timestamp('started_at') }}             as started_at,
    {{ iso_timestamp('ended_at') }}               as ended_at,
    seconds,
    rows_in,
    rows_out,
    rows_rejected,
    rows_duplicate,
    rows_lost,
    model_name,
    {{ safe_cast_integer('model_version') }}      as model_version,
    code_version,
    message
from {{ lake_source('runs') }} as runs
