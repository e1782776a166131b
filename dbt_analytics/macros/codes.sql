{#-
  Whether a cleaned code has the shape of its code system (price_pipeline.lib.codes
  WELL_FORMED_PATTERNS): CPT/HCPCS five letters or digits, MS-DRG three digits, RC four digits,
  NDC eleven digits; any other system just needs a value.
-#}
{% macro code_is_well_formed(code, code_type) -%}
    case {{ code_type }}
        when 'CPT' then regexp_full_match({{ code }}, '[0-9A-Z]{5}')
        when 'HCPCS' then regexp_full_match({{ code }}, '[0-9A-Z]{5}')
        when 'MS-DRG' then regexp_full_match({{ code }}, '[0-9]{3}')
        when 'RC' then regexp_full_match({{ code }}, '[0-9]{4}')
        when 'NDC' then regexp_full_match({{ code }}, '[0-9]{11}')
        else {{ code }} is not null
    end
{%- endmacro %}
