{#- Generic test: none of column_names holds a NULL. One test node and one pass over the model
    for all of a model's required columns, instead of one `not_null` test per column: each dbt
    test node costs ~0.04 s of dbt's own work whatever the table's size, and the single-column
    tests were 93 of the project's 155 (benchmarks/README.md, "Fewer test nodes").
    A failing row names a column and how many of its rows are NULL (one row per such column).
    Portable SQL (DuckDB and Spark). -#}
{% test not_null_columns(model, column_names) %}
with null_counts as (

    select
        {%- for column in column_names %}
        sum(case when {{ column }} is null then 1 else 0 end) as null_rows_{{ loop.index }}{{ "," if not loop.last }}
        {%- endfor %}
    from {{ model }}

)
{% for column in column_names %}
select '{{ column }}' as column_name, null_rows_{{ loop.index }} as null_rows
from null_counts
where null_rows_{{ loop.index }} > 0
{{ "union all" if not loop.last }}
{%- endfor %}
{% endtest %}
