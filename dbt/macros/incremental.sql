{#
  Incremental models are partitioned by ingest_date and rebuild whole dates: delete+insert on
  ingest_date for DuckDB, Redshift and Postgres, insert_overwrite of the ingest_date partitions on
  Athena (Hive tables, where the partition column must come last in the select).
#}
{% macro date_partition_strategy() %}{{ return(adapter.dispatch('date_partition_strategy', 'nlp_batch')()) }}{% endmacro %}
{% macro default__date_partition_strategy() %}{{ return('delete+insert') }}{% endmacro %}
{% macro athena__date_partition_strategy() %}{{ return('insert_overwrite') }}{% endmacro %}

{#
  Predicate selecting the ingest_dates to rebuild: those of `upstream` holding a (date, run_id) the
  target has not loaded yet. A new date, a re-run of a date and a new model version scoring an old
  date (promotion + rescore) all write new run ids, so all three are picked up. Partitions removed
  from the lake are not: `dbt build --full-refresh` handles that.
  `upstream_filter` restricts the upstream rows to those the target is built from (a target built
  from the current predictions only must not compare the superseded versions' run ids, which it
  never loads: the date would be rebuilt, and on Athena paid for, on every run).
#}
{% macro changed_dates(upstream, run_id_column='run_id', upstream_filter='true') -%}
    ingest_date in (
        select upstream.ingest_date
        from {{ upstream }} as upstream
        where ({{ upstream_filter }})
          and not exists (
            select 1
            from {{ this }} as loaded
            where loaded.ingest_date = upstream.ingest_date
              and loaded.{{ run_id_column }} = upstream.{{ run_id_column }}
        )
    )
{%- endmacro %}
