-- One row per reported batch: the day's status and its key figures side by side (the latest report;
-- figures of the whole batch, not of a segment or class).
with day as (
    select *
    from {{ ref('mart_monitoring_metrics') }}
    where producer = 'report'
      and source is null and department is null and product_id is null and label is null
)

select
    ingest_date,
    max(model_name)                                                              as model_name,
    max(model_version)                                                           as model_version,
    case when sum(case when severity = 'critical' then 1 else 0 end) > 0 then 'critical'
         when sum(case when severity = 'warning' then 1 else 0 end) > 0 then 'warning'
         else 'ok' end                                                           as status,
    cast(sum(case when severity = 'critical' then 1 else 0 end) as bigint)       as n_critical,
    cast(sum(case when severity = 'warning' then 1 else 0 end) as bigint)        as n_warning,
    {%- for metric in ['landed', 'quarantine_share', 'duplicate_share', 'n_predictions', 'mean_confidence',
                       'low_confidence_share', 'psi_confidence', 'psi_text_length', 'label_js', 'token_js',
                       'oov_rate', 'embedding_distance', 'n_labelled', 'accuracy', 'macro_f1', 'macro_f1_drop',
                       'challenger_agreement', 'run_seconds', 'infer_rows_per_second',
                       'emr_dollars_per_million_texts'] %}
    max(case when metric = '{{ metric }}' then value end)                        as {{ metric }},
    {%- endfor %}
    max(run_id)                                                                  as run_id
from day
group by ingest_date
