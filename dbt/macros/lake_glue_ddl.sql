{#
  DDL for the lake's Glue tables, generated from the `lake` sources (_lake__sources.yml):

      dbt run-operation lake_glue_ddl --args '{s3_uri: s3://bucket/prefix}'

  prints the statements, each ending with ';':
  - Athena: the Glue database, and one CREATE EXTERNAL TABLE per zone, Parquet (JSON for the run
    records), with partition projection on the zone's partition keys so new dates need no
    registration;
  - Redshift: the Spectrum external schema over that Glue database, and MSCK REPAIR TABLE for each
    partitioned table (to run in Athena after each batch): Spectrum ignores partition projection and
    sees only partitions registered in Glue.
  s3_uri defaults to $NLP_LAKE_S3_URI, else $NLP_LAKE_ROOT when that is an s3:// or s3a:// URI (as on
  EMR); iam_role (the Spectrum role ARN) to $NLP_REDSHIFT_SPECTRUM_ROLE, else the cluster's default
  role. With --target athena and `apply: true` it also runs the Athena statements (IF NOT EXISTS:
  safe to repeat before each `dbt build`).
#}
{% macro lake_glue_ddl(s3_uri=none, iam_role=none, apply=false) %}
  {%- if apply and target.type != 'athena' -%}
    {{ exceptions.raise_compiler_error("lake_glue_ddl: apply=true creates the Glue tables through Athena; run it with --target athena (this is " ~ target.type ~ ")") }}
  {%- endif -%}
  {%- for statement in lake_glue_statements(s3_uri, iam_role) %}
    {{- print(statement ~ ';\n') }}
    {%- if apply and (statement.startswith('CREATE DATABASE') or statement.startswith('CREATE EXTERNAL TABLE')) %}
      {%- do run_query(statement) %}
    {%- endif %}
  {%- endfor %}
{% endmacro %}

{% macro lake_glue_statements(s3_uri=none, iam_role=none) %}
  {%- set lake_root = env_var('NLP_LAKE_ROOT', '') -%}
  {%- set s3_uri = (s3_uri or env_var('NLP_LAKE_S3_URI', '') or (lake_root if lake_root.startswith('s3') else '')).rstrip('/') -%}
  {%- if s3_uri.startswith('s3a://') -%}{%- set s3_uri = 's3://' ~ s3_uri[6:] -%}{%- endif -%}
  {%- if not s3_uri.startswith('s3://') -%}
    {{ exceptions.raise_compiler_error("lake_glue_ddl: the lake's S3 location is missing or not s3:// ('" ~ s3_uri ~ "'); set NLP_LAKE_S3_URI (or an s3 NLP_LAKE_ROOT) or pass --args '{s3_uri: s3://bucket/prefix}'") }}
  {%- endif -%}
  {%- set iam_role = iam_role or env_var('NLP_REDSHIFT_SPECTRUM_ROLE', '') -%}
  {%- set tables = graph.sources.values() | selectattr('source_name', 'equalto', 'lake') | sort(attribute='name') | list -%}
  {%- set database = tables[0].schema -%}
  {%- set statements = ['CREATE DATABASE IF NOT EXISTS `' ~ database ~ '`'] -%}

  {%- for table in tables -%}
    {%- set meta = table.meta -%}
    {%- set zone = meta.get('location') or meta['files'].split('/')[0] -%}
    {%- set location = s3_uri ~ '/' ~ zone ~ '/' -%}
    {%- set partition_names = meta['partitions'] | map(attribute='name') | list -%}
    {%- set data_columns, partition_columns = [], [] -%}
    {%- for column in table.columns.values() -%}
      {%- set ddl = '`' ~ column.name ~ '` ' ~ column.data_type -%}
      {%- do (partition_columns if column.name in partition_names else data_columns).append(ddl) -%}
    {%- endfor -%}
    {%- set lines = ['CREATE EXTERNAL TABLE IF NOT EXISTS `' ~ database ~ '`.`' ~ table.name ~ '` (', '  ' ~ data_columns | join(',\n  '), ')'] -%}
    {%- if partition_columns -%}
      {%- do lines.append('PARTITIONED BY (' ~ partition_columns | join(', ') ~ ')') -%}
    {%- endif -%}
    {%- if meta['format'] == 'json' -%}
      {%- do lines.append("ROW FORMAT SERDE 'org.openx.data.jsonserde.JsonSerDe'") -%}
    {%- else -%}
      {%- do lines.append('STORED AS PARQUET') -%}
    {%- endif -%}
    {%- do lines.append("LOCATION '" ~ location ~ "'") -%}
    {%- if partition_columns -%}
      {%- set properties = ["'projection.enabled' = 'true'"] -%}
      {%- set template = [location[:-1]] -%}
      {%- for partition in meta['partitions'] -%}
        {%- set key = 'projection.' ~ partition.name -%}
        {%- if partition.projection == 'date' -%}
          {%- do properties.extend([
                "'" ~ key ~ ".type' = 'date'",
                "'" ~ key ~ ".format' = 'yyyy-MM-dd'",
                "'" ~ key ~ ".range' = '" ~ var('lake_first_date') ~ ",NOW'",
                "'" ~ key ~ ".interval' = '1'",
                "'" ~ key ~ ".interval.unit' = 'DAYS'"]) -%}
        {%- elif partition.projection == 'integer' -%}
          {%- do properties.extend([
                "'" ~ key ~ ".type' = 'integer'",
                "'" ~ key ~ ".range' = '1," ~ var('lake_max_model_version') ~ "'"]) -%}
        {%- else -%}
          {{ exceptions.raise_compiler_error("_lake__sources.yml: " ~ table.name ~ "." ~ partition.name ~ " has projection '" ~ partition.projection ~ "'; lake_glue_ddl knows date and integer") }}
        {%- endif -%}
        {%- do template.append(partition.name ~ '=${' ~ partition.name ~ '}') -%}
      {%- endfor -%}
      {%- do properties.append("'storage.location.template' = '" ~ template | join('/') ~ "/'") -%}
      {%- do lines.append('TBLPROPERTIES (\n  ' ~ properties | join(',\n  ') ~ '\n)') -%}
    {%- endif -%}
    {%- do statements.append(lines | join('\n')) -%}
  {%- endfor -%}

  {%- do statements.append('-- Redshift: Spectrum reads the same Glue database\nCREATE EXTERNAL SCHEMA IF NOT EXISTS ' ~ database ~ " FROM DATA CATALOG DATABASE '" ~ database ~ "' IAM_ROLE " ~ ("'" ~ iam_role ~ "'" if iam_role else 'default')) -%}
  {%- for table in tables if table.meta['partitions'] -%}
    {%- set note = '-- Athena, after each batch, so that Spectrum sees its new partitions\n' if loop.first else '' -%}
    {%- do statements.append(note ~ 'MSCK REPAIR TABLE `' ~ database ~ '`.`' ~ table.name ~ '`') -%}
  {%- endfor -%}
  {{ return(statements) }}
{% endmacro %}
