{#
  The relation a staging model reads a lake zone from.
  Athena, Redshift (Spectrum) and other adapters: the Glue table, i.e. source('lake', name).
  DuckDB: the zone's files under $NLP_LAKE_ROOT (meta.files in _lake__sources.yml), every declared
  column cast to its Glue type so that DuckDB sees what Athena sees; while the zone has no files yet
  (fresh lake, no quarantine, no shadow challenger) an empty relation with the same columns, because
  read_parquet fails on a glob that matches nothing.
#}
{% macro lake_source(table_name) %}
  {%- set relation = source('lake', table_name) -%}
  {{ return(adapter.dispatch('lake_source', 'nlp_batch')(relation, table_name)) }}
{% endmacro %}

{% macro default__lake_source(relation, table_name) %}
  {{ return(relation) }}
{% endmacro %}

{% macro duckdb__lake_source(relation, table_name) %}
  {%- if not execute -%}
    {{ return(relation) }}
  {%- endif -%}
  {%- set node = graph.sources['source.' ~ project_name ~ '.lake.' ~ table_name] -%}
  {%- set files = lake_root() ~ '/' ~ node.meta['files'] -%}
  {%- set columns = [] -%}  {#- (quoted name, DuckDB type) -#}
  {%- for column in node.columns.values() -%}
    {%- do columns.append((adapter.quote(column.name), duckdb_type_of(column.data_type, table_name ~ '.' ~ column.name))) -%}
  {%- endfor -%}

  {%- if run_query("select count(*) from glob(" ~ sql_string(files) ~ ")").columns[0].values()[0] == 0 -%}
    {#- an empty zone is normal (no quarantine yet); an empty lake is a wrong NLP_LAKE_ROOT -#}
    {%- if run_query("select count(*) from glob(" ~ sql_string(lake_root() ~ '/**') ~ ")").columns[0].values()[0] == 0 -%}
      {{ exceptions.raise_compiler_error("lake root '" ~ lake_root() ~ "' (NLP_LAKE_ROOT) holds no files: point NLP_LAKE_ROOT at the lake the Spark jobs write") }}
    {%- endif -%}
    {%- set nulls = [] -%}
    {%- for name, type in columns -%}{%- do nulls.append('cast(null as ' ~ type ~ ') as ' ~ name) -%}{%- endfor -%}
    {{ return('(select ' ~ nulls | join(', ') ~ ' where 1 = 0)') }}
  {%- endif -%}

  {%- if node.meta['format'] == 'json' -%}
    {%- set keys = [] -%}
    {%- for column in node.columns.values() -%}
      {%- do keys.append(sql_string(column.name) ~ ': ' ~ sql_string(columns[loop.index0][1])) -%}
    {%- endfor -%}
    {%- set reader = "read_json(" ~ sql_string(files) ~ ", format = 'auto', hive_partitioning = false, columns = {" ~ keys | join(', ') ~ "})" -%}
  {%- else -%}
    {%- set reader = "read_parquet(" ~ sql_string(files) ~ ", hive_partitioning = true, union_by_name = true)" -%}
  {%- endif -%}
  {%- set typed = [] -%}
  {%- for name, type in columns -%}{%- do typed.append('cast(' ~ name ~ ' as ' ~ type ~ ') as ' ~ name) -%}{%- endfor -%}
  {{ return('(select ' ~ typed | join(', ') ~ ' from ' ~ reader ~ ')') }}
{% endmacro %}

{# The lake root DuckDB reads, from $NLP_LAKE_ROOT (the pipeline sets it); s3a:// is Hadoop's name for s3://. #}
{% macro lake_root() %}
  {%- set root = env_var('NLP_LAKE_ROOT', '../lake').rstrip('/') -%}
  {{ return('s3://' ~ root[6:] if root.startswith('s3a://') else root) }}
{% endmacro %}

{% macro sql_string(value) %}
  {{ return("'" ~ value | replace("'", "''") ~ "'") }}
{% endmacro %}

{# Glue (Hive) column type -> DuckDB type. #}
{% macro duckdb_type_of(glue_type, column_name) %}
  {%- set types = {'string': 'varchar', 'int': 'integer', 'bigint': 'bigint', 'double': 'double',
                   'boolean': 'boolean', 'date': 'date', 'timestamp': 'timestamp',
                   'array<string>': 'varchar[]'} -%}
  {%- if glue_type not in types -%}
    {{ exceptions.raise_compiler_error("_lake__sources.yml: column " ~ column_name ~ " has Glue type '" ~ glue_type ~ "', which lake_source cannot map to DuckDB (known: " ~ types.keys() | join(', ') ~ ")") }}
  {%- endif -%}
  {{ return(types[glue_type]) }}
{% endmacro %}
