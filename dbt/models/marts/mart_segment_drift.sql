-- ingest_date x source x segment x segment_value: how far each department's and product's label mix
-- (Jensen-Shannon distance) and confidence (PSI) moved against the report's baseline window, ranked per
-- day, beside the day's current scoring of that segment. Segments with too few predictions on the day or
-- in the baseline have no figures (setting report_segment_min_rows), so no row.
with drift as (
    select
        ingest_date,
        source,
        case when department is not null then 'department' else 'product' end    as segment,
        coalesce(department, product_id)                                           as segment_value,
        max(case when metric = 'label_js' then value end)                          as label_js,
        max(case when metric = 'psi_confidence' then value end)                    as psi_confidence,
        max(case when metric = 'n_baseline_documents' then value end)              as n_baseline_documents,
        max(model_version)                                                         as model_version
    from {{ ref('mart_monitoring_metrics') }}
    where producer = 'report'
      and section = 'drift'
      and (department is not null or product_id is not null)
    group by 1, 2, 3, 4
),

scored as (
    select
        ingest_date,
        source,
        coalesce(department, '(none)')  as department,
        product_id,
        predicted_label,
        confidence
    from {{ ref('fct_predictions') }}
    where is_current
),

segments as (
    select ingest_date, source, cast('department' as varchar) as segment, department as segment_value,
           count(*) as n_documents, sum(case when predicted_label = 'negative' then 1 else 0 end) as n_negative,
           avg(confidence) as mean_confidence
    from scored
    group by 1, 2, 3, 4
    union all
    select ingest_date, source, cast('product' as varchar), product_id,
           count(*), sum(case when predicted_label = 'negative' then 1 else 0 end), avg(confidence)
    from scored
    where product_id is not null
    group by 1, 2, 3, 4
)

select
    drift.ingest_date,
    drift.source,
    drift.segment,
    drift.segment_value,
    case when drift.segment = 'department' then drift.segment_value else products.department end
                                                                          as department,
    products.product_class,
    cast(segments.n_documents as bigint)                                  as n_documents,
    cast(segments.n_negative as bigint)                                   as n_negative,
    {{ ratio('segments.n_negative', 'segments.n_documents') }}            as share_negative,
    segments.mean_confidence,
    cast(drift.n_baseline_documents as bigint)                            as n_baseline_documents,
    drift.label_js,
    drift.psi_confidence,
    cast(rank() over (partition by drift.ingest_date, drift.segment order by drift.label_js desc) as bigint)
                                                                          as drift_rank,
    drift.model_version
from drift
join segments
    on  segments.ingest_date = drift.ingest_date
    and segments.source = drift.source
    and segments.segment = drift.segment
    and segments.segment_value = drift.segment_value
left join {{ ref('dim_products') }} as products
    on  drift.segment = 'product'
    and products.source = drift.source
    and products.product_id = drift.segment_value
