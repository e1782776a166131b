{#-
  The columns that identify an item within a hospital (stg_prices.item_key, mart_item_codes,
  and the item_id hash of int_price_facts): description, primary code and type, setting,
  billing class, modifiers, drug unit and type, every published code (the codes list: items that
  differ only in a secondary NDC or CDM code are different items), plus the hospital.
-#}
{% macro item_key_columns() -%}
    {{ return(['hospital_key', 'description', 'primary_code', 'primary_code_type', 'setting',
               'billing_class', 'modifiers', 'drug_unit_of_measurement', 'drug_type_of_measurement', 'codes']) }}
{%- endmacro %}
