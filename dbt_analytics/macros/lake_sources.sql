{#-
  The lake's sources on every engine. On DuckDB (dbt-duckdb) a source renders its
  `meta.external_location` (sources.yml: read_parquet('<lake>/prices_history/*/...', ...)) in
  place of a table name; dbt-spark knows no external locations. So `source()` is overridden:
  on Spark it renders the same files as Spark's path syntax, parquet.`<glob>`, the path taken
  from that external_location (one definition of where each table lives). Spark reads a glob
  without inferring partition columns from `hospital_key=` folders (hospital_key is a column of
  the files), and spark.sql.parquet.mergeSchema (profiles.yml) unions the files by name as
  union_by_name does. builtins.source is always called, so dbt records the lineage.
-#}
{% macro source(source_name, table_name) %}
    {%- set relation = builtins.source(source_name, table_name) -%}
    {%- if execute and target.type == 'spark' -%}
        {{ return(spark_lake_location(source_name, table_name)) }}
    {%- endif -%}
    {{ return(relation) }}
{% endmacro %}

{#- parquet.`<path>` of a lake source: the first quoted path of its external_location. -#}
{% macro spark_lake_location(source_name, table_name) %}
    {%- set node = (graph.sources.values() | selectattr('source_name', 'equalto', source_name)
                    | selectattr('name', 'equalto', table_name) | first) -%}
    {%- set location = node.meta.get('external_location') or node.config.meta.get('external_location') -%}
    {%- set path = modules.re.search("'((?:[^']|'')*)'", location).group(1).replace("''", "'") -%}
    {{ return('parquet.`' ~ path.replace('`', '``') ~ '`') }}
{% endmacro %}

{#- Number of lake files a glob matches (DuckDB glob(); on Spark the pp_lake_glob UDF). -#}
{% macro lake_file_count(pattern) %}
    {{ return(adapter.dispatch('lake_file_count')(pattern)) }}
{% endmacro %}

{% macro default__lake_file_count(pattern) %}
    {%- set found = run_query("select count(*) from glob('" ~ pattern.replace("'", "''") ~ "')") -%}
    {{ return(found.columns[0].values()[0]) }}
{% endmacro %}

{% macro spark__lake_file_count(pattern) %}
    {%- set found = run_query("select size(pp_lake_glob('" ~ pattern.replace("\\", "\\\\").replace("'", "\\'") ~ "'))") -%}
    {{ return(found.columns[0].values()[0]) }}
{% endmacro %}
