{#- Charge kinds of price_pipeline.lib.lake.schemas, kept here once for models and tests. -#}
{% macro item_level_charge_kinds() -%}
    {{ return(['gross', 'discounted_cash', 'minimum', 'maximum']) }}
{%- endmacro %}

{% macro numeric_charge_kinds() -%}
    {#- Kinds whose value is a number: dollars in `amount`, or a percentage for negotiated_percentage. -#}
    {{ return(['gross', 'discounted_cash', 'minimum', 'maximum', 'negotiated_dollar',
               'negotiated_percentage', 'estimated_amount', 'median', 'percentile_10th',
               'percentile_90th']) }}
{%- endmacro %}

{% macro sql_list(values) -%}
    ({%- for value in values -%}'{{ value }}'{{ ", " if not loop.last }}{%- endfor -%})
{%- endmacro %}

{% macro dollar_charge_kinds() -%}
    {#- Kinds whose value is a dollar amount (numeric_charge_kinds without negotiated_percentage). -#}
    {{ return(['gross', 'discounted_cash', 'minimum', 'maximum', 'negotiated_dollar',
               'estimated_amount', 'median', 'percentile_10th', 'percentile_90th']) }}
{%- endmacro %}
