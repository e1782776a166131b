{#- The dictionary joins of a row-level read of the lake (int_hospital_cell_stats,
    int_price_facts): each as-published row of `rows` to its integer keys (int_price_keys, alias
    price_keys) and its cell (int_price_cells, alias cells), on the raw strings, so no string
    is cleaned per row. Both dictionaries are built from the same history, so the inner joins
    keep every row of a known file version. -#}
{% macro join_price_dictionaries(rows) -%}
inner join {{ ref('int_price_keys') }} as price_keys
    on {{ rows }}.hospital_key = price_keys.raw_hospital_key
    and {{ rows }}.file_sha256 = price_keys.raw_file_sha256
    and {{ rows }}.payer_name is not distinct from price_keys.raw_payer_name
    and {{ rows }}.plan_name is not distinct from price_keys.raw_plan_name
inner join {{ ref('int_price_cells') }} as cells
    on {{ rows }}.primary_code is not distinct from cells.raw_primary_code
    and {{ rows }}.primary_code_type is not distinct from cells.raw_primary_code_type
    and {{ rows }}.setting is not distinct from cells.raw_setting
    and {{ rows }}.charge_kind is not distinct from cells.raw_charge_kind
    and {{ rows }}.drug_type_of_measurement is not distinct from cells.raw_drug_type
{%- endmacro %}

{#- The numeric value of a price row joined to its cell: the percentage for negotiated
    percentages; for a drug cell (a unit type is given: int_price_cells.is_per_unit) the amount
    per unit, i.e. divided by the row's drug_unit_of_measurement (NULL when that is missing or
    not positive, so the row is not compared); else the amount. -#}
{% macro price_value(rows) -%}
case
    when cells.charge_kind = 'negotiated_percentage' then cast({{ rows }}.percentage as double)
    when cells.is_per_unit then cast({{ rows }}.amount as double)
        / case when {{ rows }}.drug_unit_of_measurement > 0 then cast({{ rows }}.drug_unit_of_measurement as double) end
    else cast({{ rows }}.amount as double)
end
{%- endmacro %}
