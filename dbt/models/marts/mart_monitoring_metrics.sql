-- ingest_date x producer x model_version x section x metric x scope: every figure of the latest run of
-- each producer (stage or report) for a batch. Champion and shadow scoring, and a rescoring by another
-- version, are runs of their own (model_version); an earlier run of the same producer is superseded.
with runs as (
    select run_id, producer, batch_date, model_version, max(recorded_at) as recorded_at
    from {{ ref('stg_monitoring_metrics') }}
    where batch_date is not null
    group by run_id, producer, batch_date, model_version
),

latest as (
    select
        run_id,
        row_number() over (partition by producer, batch_date, coalesce(model_version, -1)
                           order by recorded_at desc, run_id desc)   as newest
    from runs
)

select
    metrics.batch_date                      as ingest_date,
    metrics.producer,
    metrics.section,
    metrics.metric,
    metrics.source,
    metrics.department,
    metrics.product_id,
    metrics.label,
    metrics.value,
    metrics.unit,
    metrics.severity,
    metrics.threshold,
    metrics.message,
    metrics.model_name,
    metrics.model_version,
    metrics.run_id,
    metrics.recorded_at
from {{ ref('stg_monitoring_metrics') }} as metrics
join latest
    on latest.run_id = metrics.run_id
   and latest.newest = 1
where metrics.batch_date is not null
