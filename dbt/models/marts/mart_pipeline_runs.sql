-- One row per stage run: duration, throughput, outcome, and which attempt it was for its stage and date.
select
    run_id,
    stage,
    ingest_date,
    batch_date,
    status,
    status in ('failed', 'blocked')                                    as is_failure,
    cast(row_number() over (partition by stage, ingest_date order by started_at, run_id) as bigint)
                                                                       as attempt,
    started_at,
    ended_at,
    seconds,
    rows_in,
    rows_out,
    rows_rejected,
    rows_duplicate,
    {{ ratio('rows_in', 'seconds') }}                                  as rows_per_second,
    model_name,
    model_version,
    code_version,
    message
from {{ ref('stg_pipeline_runs') }}
