-- One row per document and model version that scored it, with the document's attributes.
-- Incremental by ingest_date: only dates with predictions not loaded yet are rebuilt, whole.
{{ config(
    materialized='incremental',
    incremental_strategy=date_partition_strategy(),
    unique_key='ingest_date',
    on_schema_change='append_new_columns',
) }}
{#- adapter-specific settings, given only where the adapter knows them -#}
{%- if target.type == 'athena' %}{{ config(partitioned_by=['ingest_date']) }}{% endif -%}
{%- if target.type == 'redshift' %}{{ config(sort=['ingest_date'], dist='review_id') }}{% endif %}

with predictions as (
    select *
    from {{ ref('stg_predictions') }}
    {% if is_incremental() -%}
    where {{ changed_dates(ref('stg_predictions')) }}
    {%- endif %}
),

current_version as (
    select ingest_date, max(model_version) as model_version
    from predictions
    group by ingest_date
)

select
    predictions.review_id,
    documents.source,
    documents.product_id,
    documents.department,
    documents.product_class,
    documents.rating,
    predictions.predicted_label,
    predictions.confidence,
    predictions.score_negative,
    predictions.score_neutral,
    predictions.score_positive,
    predictions.model_name,
    predictions.model_version,
    predictions.model_version = current_version.model_version      as is_current,
    predictions.run_id,
    predictions.ingest_date   -- last: Athena's partition column
from predictions
join {{ ref('stg_documents') }} as documents
    on  documents.review_id = predictions.review_id
    and documents.ingest_date = predictions.ingest_date
join current_version
    on  current_version.ingest_date = predictions.ingest_date
