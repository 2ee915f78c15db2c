select
    run_id,
    stage,
    cast(ingest_date as varchar)       as ingest_date,
    status,
    cast(started_at as timestamp)      as started_at,
    cast(ended_at as timestamp)        as ended_at,
    cast(seconds as double)            as seconds,
    cast(rows_in as bigint)            as rows_in,
    cast(rows_out as bigint)           as rows_out,
    cast(rows_rejected as bigint)      as rows_rejected,
    cast(rows_duplicate as bigint)     as rows_duplicate,
    model_name,
    model_version,
    code_version,
    message
from {{ source('lake', 'runs') }}
