{#-
  clean_price_column(column, expression): how staging cleans each column of the price history
  (stg_prices_history), the one place these rules are written. `expression` is the as-published
  value (the column itself by default).

  stg_prices applies every rule to every row. The models that read the as-published rows of
  stg_prices_history (int_price_groups, int_price_cells, int_hospital_item_codes,
  int_hospital_code_descriptions) first narrow them to distinct values and then apply the same
  rule, so a string is cleaned once per distinct value instead of once per price row, with the
  result staging would give.
-#}
{% macro clean_price_column(column, expression=none) -%}
    {%- set rules = {
        'hospital_key': 'text',
        'file_sha256': 'sha256',
        'source_row': 'bigint',
        'source_path': 'text',
        'hospital_name': 'text',
        'last_updated_on': 'date',
        'template_version': 'text',
        'description': 'text',
        'setting': 'enum',
        'billing_class': 'enum',
        'modifiers': 'code',
        'drug_unit_of_measurement': 'double',
        'drug_type_of_measurement': 'code',
        'primary_code': 'code',
        'primary_code_type': 'code',
        'payer_name': 'text',
        'plan_name': 'text',
        'charge_kind': 'enum',
        'amount': 'double',
        'percentage': 'double',
        'value_text': 'text',
        'methodology': 'text',
        'additional_payer_notes': 'text',
        'additional_generic_notes': 'text',
    } -%}
    {%- if column not in rules -%}
        {{ exceptions.raise_compiler_error("clean_price_column: no cleaning rule for column '" ~ column ~ "'") }}
    {%- endif -%}
    {%- set value = expression if expression is not none else column -%}
    {%- set rule = rules[column] -%}
    {%- if rule == 'text' -%} {{ clean_text(value) }}
    {%- elif rule == 'enum' -%} {{ clean_enum(value) }}
    {%- elif rule == 'code' -%} {{ clean_code(value) }}
    {%- elif rule == 'sha256' -%} lower({{ clean_text(value) }})
    {%- else -%} cast({{ value }} as {{ rule }})
    {%- endif -%}
{%- endmacro %}
