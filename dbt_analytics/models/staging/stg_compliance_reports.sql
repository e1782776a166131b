{#-
  One row per listed file of each hospital with its CMS conformance summary (conformance_reports
  asset). DuckDB's read_parquet fails on a glob that matches nothing, so before any hospital has
  a report the model returns the same columns with no rows instead (checked with glob() at run
  time; at parse time the source branch is rendered so the lineage to the source is recorded).
-#}

{%- set pattern = env_var('PRICE_PIPELINE_LAKE_URL', '../.data/lake').rstrip('/') ~ '/conformance/*/report.parquet' -%}
{%- set has_reports = true -%}
{%- set has_selection = true -%}
{%- if execute -%}
    {%- set found = run_query("select count(*) from glob('" ~ pattern.replace("'", "''") ~ "')") -%}
    {%- set has_reports = found.columns[0].values()[0] > 0 -%}
    {%- if has_reports -%}
        {#- rules_selection is newer than the first reports: NULL until a hospital's report is rewritten -#}
        {%- set cols = run_query("select count(*) from parquet_schema('" ~ pattern.replace("'", "''") ~ "') where name = 'rules_selection'") -%}
        {%- set has_selection = cols.columns[0].values()[0] > 0 -%}
    {%- endif -%}
{%- endif -%}

{% if has_reports %}

with source as (

    select * from {{ source('lake', 'conformance_reports') }}

)

select
    {{ clean_text('hospital_key') }}               as hospital_key,
    lower({{ clean_text('file_sha256') }})         as file_sha256,
    {{ clean_text('url') }}                        as url,
    {{ clean_enum('download_status') }}            as download_status,
    {{ clean_enum('format') }}                     as format,
    {{ clean_text('declared_version') }}           as declared_version,
    {{ clean_text('rules_version') }}              as rules_version,
    {% if has_selection -%}
    {{ clean_text('rules_selection') }}            as rules_selection,
    {%- else -%}
    cast(null as varchar)                          as rules_selection,
    {%- endif %}
    cast(valid as boolean)                         as is_valid,
    cast(errors as bigint)                         as n_errors,
    cast(alerts as bigint)                         as n_alerts,
    rule_counts,
    {{ clean_text('top_rules') }}                  as top_rules,
    cast(rows_checked as bigint)                   as rows_checked,
    cast(findings_truncated as boolean)            as findings_truncated,
    {{ clean_text('report_key') }}                 as report_key,
    cast(validated_at as timestamp)                as validated_at
from source

{% else %}

select
    cast(null as varchar)   as hospital_key,
    cast(null as varchar)   as file_sha256,
    cast(null as varchar)   as url,
    cast(null as varchar)   as download_status,
    cast(null as varchar)   as format,
    cast(null as varchar)   as declared_version,
    cast(null as varchar)   as rules_version,
    cast(null as varchar)   as rules_selection,
    cast(null as boolean)   as is_valid,
    cast(null as bigint)    as n_errors,
    cast(null as bigint)    as n_alerts,
    cast(null as struct(rule varchar, severity varchar, count bigint)[]) as rule_counts,
    cast(null as varchar)   as top_rules,
    cast(null as bigint)    as rows_checked,
    cast(null as boolean)   as findings_truncated,
    cast(null as varchar)   as report_key,
    cast(null as timestamp) as validated_at
where false

{% endif %}
