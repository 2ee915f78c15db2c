-- ingest_date x source x department x class x product: the current predictions' sentiment counts
-- and shares, mean confidence and mean rating. Incremental like fct_predictions, which it reads.
{{ config(
    materialized='incremental',
    incremental_strategy=date_partition_strategy(),
    unique_key='ingest_date',
    on_schema_change='append_new_columns',
) }}
{#- adapter-specific settings, given only where the adapter knows them -#}
{%- if target.type == 'athena' %}{{ config(partitioned_by=['ingest_date']) }}{% endif -%}
{%- if target.type == 'redshift' %}{{ config(sort=['ingest_date']) }}{% endif %}

with current_predictions as (
    select *
    from {{ ref('fct_predictions') }}
    where is_current
    {% if is_incremental() -%}
      and {{ changed_dates(ref('fct_predictions'), upstream_filter='upstream.is_current') }}
    {%- endif %}
),

counted as (
    select
        ingest_date,
        source,
        coalesce(department, '(none)')                                        as department,
        coalesce(product_class, '(none)')                                     as product_class,
        coalesce(product_id, '(none)')                                        as product_id,
        count(*)                                                              as n_documents,
        sum(case when predicted_label = 'negative' then 1 else 0 end)         as n_negative,
        sum(case when predicted_label = 'neutral' then 1 else 0 end)          as n_neutral,
        sum(case when predicted_label = 'positive' then 1 else 0 end)         as n_positive,
        avg(confidence)                                                       as mean_confidence,
        avg(cast(rating as {{ type_double() }}))                              as mean_rating,
        max(model_version)                                                    as model_version,
        max(run_id)                                                           as run_id
    from current_predictions
    group by 1, 2, 3, 4, 5
)

select
    source,
    department,
    product_class,
    product_id,
    cast(n_documents as bigint)                  as n_documents,
    cast(n_negative as bigint)                   as n_negative,
    cast(n_neutral as bigint)                    as n_neutral,
    cast(n_positive as bigint)                   as n_positive,
    {{ ratio('n_negative', 'n_documents') }}     as share_negative,
    {{ ratio('n_neutral', 'n_documents') }}      as share_neutral,
    {{ ratio('n_positive', 'n_documents') }}     as share_positive,
    mean_confidence,
    mean_rating,
    model_version,
    run_id,
    ingest_date
from counted
