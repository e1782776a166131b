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
    {%- set has_reports = lake_file_count(pattern) > 0 -%}
    {%- if has_reports -%}
        {#- rules_selection is newer than the first reports: NULL until a hospital's report is rewritten -#}
        {%- set has_selection = parquet_has_column(pattern, 'rules_selection') -%}
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
    cast(null as {{ string_type() }})                          as rules_selection,
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
    cast(null as {{ string_type() }})   as hospital_key,
    cast(null as {{ string_type() }})   as file_sha256,
    cast(null as {{ string_type() }})   as url,
    cast(null as {{ string_type() }})   as download_status,
    cast(null as {{ string_type() }})   as format,
    cast(null as {{ string_type() }})   as declared_version,
    cast(null as {{ string_type() }})   as rules_version,
    cast(null as {{ string_type() }})   as rules_selection,
    cast(null as boolean)   as is_valid,
    cast(null as bigint)    as n_errors,
    cast(null as bigint)    as n_alerts,
    cast(null as {{ struct_list_type([('rule', string_type()), ('severity', string_type()), ('count', 'bigint')]) }}) as rule_counts,
    cast(null as {{ string_type() }})   as top_rules,
    cast(null as bigint)    as rows_checked,
    cast(null as boolean)   as findings_truncated,
    cast(null as {{ string_type() }})   as report_key,
    cast(null as timestamp) as validated_at
where false

{% endif %}
