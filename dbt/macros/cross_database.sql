{#
  Cross-database helpers, dispatched per adapter where dbt-core's built-ins are missing or differ.
  default__ serves DuckDB and Athena (Trino) unless noted; postgres__ also serves Redshift unless a
  redshift__ version exists (dbt's dispatch order for Redshift: redshift, postgres, default).
#}

{# An 8-byte float. dbt's type_float() is `float`, which DuckDB and Athena read as 4-byte REAL. #}
{% macro type_double() %}{{ return(adapter.dispatch('type_double', 'nlp_batch')()) }}{% endmacro %}
{% macro default__type_double() %}double{% endmacro %}
{% macro postgres__type_double() %}double precision{% endmacro %}

{# A / B as a double, NULL when B is 0: integer division truncates on Athena and Redshift, not on DuckDB. #}
{% macro ratio(numerator, denominator) -%}
    cast({{ numerator }} as {{ type_double() }}) / nullif({{ denominator }}, 0)
{%- endmacro %}

{# True when the whole string matches the POSIX regex. #}
{% macro matches_regex(expression, pattern) %}{{ return(adapter.dispatch('matches_regex', 'nlp_batch')(expression, pattern)) }}{% endmacro %}
{% macro default__matches_regex(expression, pattern) %}regexp_like({{ expression }}, '{{ pattern }}'){% endmacro %}
{% macro duckdb__matches_regex(expression, pattern) %}regexp_full_match({{ expression }}, '{{ pattern }}'){% endmacro %}
{% macro postgres__matches_regex(expression, pattern) %}({{ expression }} ~ '{{ pattern }}'){% endmacro %}

{#
  An integer, or NULL when the string is not one. Guarded by a regex rather than try_cast: DuckDB's
  try_cast accepts '5.0', Athena's does not, and Redshift has no try_cast.
#}
{% macro safe_cast_integer(expression) -%}
    case when {{ matches_regex('trim(' ~ expression ~ ')', '^[+-]?[0-9]{1,9}$') }}
         then cast(trim({{ expression }}) as integer) end
{%- endmacro %}

{# A date from 'yyyy-mm-dd', or NULL (the dbt stage's run records say ingest_date 'all'). #}
{% macro safe_cast_date(expression) -%}
    case when {{ matches_regex(expression, '^[0-9]{4}-[0-9]{2}-[0-9]{2}$') }}
         then cast({{ expression }} as date) end
{%- endmacro %}

{#
  An ISO-8601 string with offset ('2026-11-01T18:27:40.97+00:00') as a UTC timestamp without zone,
  to the millisecond: Athena's timestamps hold milliseconds, DuckDB's and Redshift's microseconds, so
  every warehouse truncates and all three return the same values (the run records are written in
  milliseconds already; older ones had microseconds).
#}
{% macro iso_timestamp(expression) %}{{ return(adapter.dispatch('iso_timestamp', 'nlp_batch')(expression)) }}{% endmacro %}
{% macro default__iso_timestamp(expression) -%}
    date_trunc('millisecond', cast(cast({{ expression }} as timestamp with time zone) at time zone 'UTC' as timestamp))
{%- endmacro %}
{% macro athena__iso_timestamp(expression) -%}
    date_trunc('millisecond', cast(from_iso8601_timestamp({{ expression }}) at time zone 'UTC' as timestamp))
{%- endmacro %}

{# The first capture group of a POSIX regex in a string, or NULL when it does not match. #}
{% macro regex_group(expression, pattern) %}{{ return(adapter.dispatch('regex_group', 'nlp_batch')(expression, pattern)) }}{% endmacro %}
{% macro default__regex_group(expression, pattern) %}nullif(regexp_extract({{ expression }}, '{{ pattern }}', 1), ''){% endmacro %}
{% macro postgres__regex_group(expression, pattern) %}substring({{ expression }} from '{{ pattern }}'){% endmacro %}
{% macro redshift__regex_group(expression, pattern) %}nullif(regexp_substr({{ expression }}, '{{ pattern }}', 1, 1, 'e'), ''){% endmacro %}

{# date + n days, still a DATE (dbt.dateadd gives a TIMESTAMP on DuckDB and Redshift). #}
{% macro add_days(date_expression, days) %}{{ return(adapter.dispatch('add_days', 'nlp_batch')(date_expression, days)) }}{% endmacro %}
{% macro default__add_days(date_expression, days) %}({{ date_expression }} + {{ days }}){% endmacro %}
{% macro athena__add_days(date_expression, days) %}date_add('day', {{ days }}, {{ date_expression }}){% endmacro %}
{% macro redshift__add_days(date_expression, days) %}cast(dateadd(day, {{ days }}, {{ date_expression }}) as date){% endmacro %}

{#
  FROM-clause fragment giving one row per element of an array column, the element named `element`.
  Redshift Spectrum unnests nested data with its PartiQL join syntax instead of UNNEST.
#}
{% macro unnest_array(table_alias, column, element) %}{{ return(adapter.dispatch('unnest_array', 'nlp_batch')(table_alias, column, element)) }}{% endmacro %}
{% macro default__unnest_array(table_alias, column, element) %}cross join unnest({{ table_alias }}.{{ column }}) as {{ element }}_array ({{ element }}){% endmacro %}
{% macro redshift__unnest_array(table_alias, column, element) %}, {{ table_alias }}.{{ column }} as {{ element }}{% endmacro %}
