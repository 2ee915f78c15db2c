{#
  The relation a staging model reads a lake table from.
  Athena, Redshift (Spectrum) and other adapters: the Glue Data Catalog's Iceberg table, i.e.
  source('lake', name).
  DuckDB: iceberg_scan of the table's current snapshot. The pipeline (spark_jobs/warehouse.py) passes
  each existing table's metadata file in the environment variable NLP_LAKE_TABLES (JSON,
  {table: metadata.json}; read only when a model runs, so that a new value does not make dbt parse the
  project again, as a new --vars value would): the whole build
  reads the tables as they were when it started, one snapshot each, never a glob of data files (after
  an overwrite the replaced files stay until they expire, and a glob would count them twice). Every
  declared column is cast to its type in _lake__sources.yml, so DuckDB sees what Athena sees; a table
  that does not exist yet (no quarantine, no shadow challenger) is an empty relation with the same
  columns. The iceberg extension comes from PyPI (duckdb-extension-iceberg): the profile points
  DuckDB at it.
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
  {%- set columns = [] -%}  {#- (quoted name, DuckDB type) -#}
  {%- for column in node.columns.values() -%}
    {%- do columns.append((adapter.quote(column.name), duckdb_type_of(column.data_type, table_name ~ '.' ~ column.name))) -%}
  {%- endfor -%}
  {%- set metadata = fromjson(env_var('NLP_LAKE_TABLES', 'null')) -%}
  {%- if metadata is none -%}
    {{ exceptions.raise_compiler_error("NLP_LAKE_TABLES (each lake table's current metadata file) is not set: build through the pipeline, `make dbt`, which reads them from the lake's catalog (NLP_LAKE_ROOT, NLP_LAKE_CATALOG)") }}
  {%- endif -%}
  {%- if table_name not in metadata -%}
    {%- set nulls = [] -%}
    {%- for name, type in columns -%}{%- do nulls.append('cast(null as ' ~ type ~ ') as ' ~ name) -%}{%- endfor -%}
    {{ return('(select ' ~ nulls | join(', ') ~ ' where 1 = 0)') }}
  {%- endif -%}
  {%- set typed = [] -%}
  {%- for name, type in columns -%}{%- do typed.append('cast(' ~ name ~ ' as ' ~ type ~ ') as ' ~ name) -%}{%- endfor -%}
  {{ return('(select ' ~ typed | join(', ') ~ ' from iceberg_scan(' ~ sql_string(metadata[table_name]) ~ '))') }}
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
    {{ exceptions.raise_compiler_error("_lake__sources.yml: column " ~ column_name ~ " has type '" ~ glue_type ~ "', which lake_source cannot map to DuckDB (known: " ~ types.keys() | join(', ') ~ ")") }}
  {%- endif -%}
  {{ return(types[glue_type]) }}
{% endmacro %}
