{#
  dbt's is_incremental(), with two additions:
  - a table that lacks a column its model now declares (the model grew, e.g. a warehouse built by
    an older version) is rebuilt whole instead of getting the new column empty for old dates;
  - the offline portability proof: with --vars '{offline_is_incremental: true|false}', `dbt compile`
    renders the incremental (or full) SQL without asking the warehouse whether the table exists, so
    Athena and Redshift SQL compiles with no credentials. Only compile/parse/show accept the
    variable: run and build refuse it, so it can never change what production writes.
#}
{% macro is_incremental() %}
  {%- set forced = var('offline_is_incremental', none) -%}
  {%- if forced is not none -%}
    {%- if flags.WHICH not in ['compile', 'parse', 'show'] -%}
      {{ exceptions.raise_compiler_error("var offline_is_incremental is for `dbt compile` only (the portability proof); `dbt " ~ flags.WHICH ~ "` refuses it") }}
    {%- endif -%}
    {{ return(forced in [true, 'true', 'True', 1]) }}
  {%- endif -%}
  {%- if not dbt.is_incremental() -%}
    {{ return(false) }}
  {%- endif -%}
  {%- set existing = adapter.get_columns_in_relation(this) | map(attribute='name') | map('lower') | list -%}
  {%- for name in model.columns if name | lower not in existing -%}
    {{ log(this ~ " lacks column " ~ name ~ ": rebuilding every date", info=true) }}
    {{ return(false) }}
  {%- endfor -%}
  {{ return(true) }}
{% endmacro %}
