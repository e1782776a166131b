{#-
  Payer helpers shared by int_payer_map and the tests. The classification rules themselves are
  Python (price_pipeline.lib.prices.payers, called through the pp_payer_classify UDF).

  payer_text_key(col): the matching key of a raw payer or plan string in the reviewers' seed
  payer_plan_map: lower-cased, every run of characters other than letters and digits replaced
  by one space, trimmed; empty -> NULL. "UnitedHealthcare, Inc." -> "unitedhealthcare inc".
-#}
{% macro payer_text_key(column) -%}
    nullif(trim({{ regexp_replace_all('lower(cast(' ~ column ~ ' as ' ~ string_type() ~ '))', '[^a-z0-9]+', ' ') }}), '')
{%- endmacro %}

{#- price_pipeline.lib.prices.payers.PAYER_CLASSES -#}
{% macro payer_classes() -%}
    {{ return(['commercial', 'medicare_advantage', 'managed_medicaid', 'medicare_ffs', 'medicaid_ffs',
               'exchange', 'tricare', 'workers_comp', 'self_pay', 'other', 'unknown']) }}
{%- endmacro %}

{#- price_pipeline.lib.prices.payers.PRODUCTS -#}
{% macro products() -%}
    {{ return(['HMO', 'PPO', 'EPO', 'POS', 'HDHP', 'PFFS', 'SNP', 'FFS', 'unknown']) }}
{%- endmacro %}
