{#- Generic test: a model's column rules in one test node and one query --
    not_null:        none of these columns holds a NULL;
    unique:          no two rows share a (non-NULL) value of any one of these columns (as dbt's
                     `unique`);
    accepted_values: {column: [values]}: every non-NULL value of the column is one of the values
                     (as dbt's `accepted_values`);
    unique_combinations: [[columns]]: no two rows share the values of each list of columns
                     (NULLs equal; the first list is the model's grain, which the exports order by:
                     price_pipeline.lib.analytics.exports.natural_keys).
    Each dbt test node costs ~0.05 s of dbt's own work whatever the table's size, on every build,
    the incremental one included: one node per model instead of one per column and rule
    (benchmarks/README.md, "Fewer test nodes" and "One rules test per model").
    A failing row names the column, the rule and how many rows break it (one row per broken
    column and rule). Portable SQL (DuckDB and Spark). -#}
{% test column_rules(model, not_null=[], unique=[], accepted_values={}, unique_combinations=[]) %}
{%- set counted = [] -%}
{%- for column in not_null -%}
    {%- do counted.append((column, 'not_null', 'sum(case when ' ~ column ~ ' is null then 1 else 0 end)')) -%}
{%- endfor -%}
{%- for column, values in accepted_values.items() -%}
    {%- set listed = [] -%}
    {%- for value in values -%}{%- do listed.append("'" ~ (value | string | replace("'", "''")) ~ "'") -%}{%- endfor -%}
    {%- do counted.append((column, 'accepted_values', 'sum(case when ' ~ column ~ ' is not null and ' ~ column ~ ' not in (' ~ (listed | join(', ')) ~ ') then 1 else 0 end)')) -%}
{%- endfor -%}
{%- set parts = [] -%}
{%- if counted -%}
    {%- for column, rule, expression in counted -%}
        {%- do parts.append("select '" ~ column ~ "' as column_name, '" ~ rule ~ "' as rule, cast(failing_rows_" ~ loop.index ~ " as bigint) as failing_rows from row_counts where failing_rows_" ~ loop.index ~ " > 0") -%}
    {%- endfor -%}
{%- endif -%}
{%- for column in unique -%}
    {%- do parts.append("select '" ~ column ~ "' as column_name, 'unique' as rule, failing_rows from (select cast(count(*) as bigint) as failing_rows from (select " ~ column ~ " from " ~ model ~ " where " ~ column ~ " is not null group by " ~ column ~ " having count(*) > 1) as duplicated_" ~ loop.index ~ ") as duplicates_" ~ loop.index ~ " where failing_rows > 0") -%}
{%- endfor -%}
{%- for columns in unique_combinations -%}
    {%- do parts.append("select '" ~ (columns | join(', ')) ~ "' as column_name, 'unique_combination' as rule, failing_rows from (select cast(count(*) as bigint) as failing_rows from (select " ~ (columns | join(', ')) ~ " from " ~ model ~ " group by " ~ (columns | join(', ')) ~ " having count(*) > 1) as duplicated_combination_" ~ loop.index ~ ") as duplicate_combinations_" ~ loop.index ~ " where failing_rows > 0") -%}
{%- endfor -%}
{%- if counted %}
with row_counts as (

    select
        {%- for column, rule, expression in counted %}
        {{ expression }} as failing_rows_{{ loop.index }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ model }}

)
{% endif -%}
{{ parts | join('\nunion all\n') }}
{% endtest %}
