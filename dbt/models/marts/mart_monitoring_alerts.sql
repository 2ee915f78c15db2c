-- One row per alert of the latest monitoring report of each batch: what crossed which threshold.
select
    ingest_date,
    severity,
    section,
    metric,
    value,
    threshold,
    message,
    model_name,
    model_version,
    run_id,
    recorded_at
from {{ ref('mart_monitoring_metrics') }}
where producer = 'report'
  and severity is not null
