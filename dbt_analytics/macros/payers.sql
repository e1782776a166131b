{#-
  Payer/plan text normalisation and product detection, shared by int_payer_map and the tests.

  payer_text_key(col): the matching key of a raw payer or plan string: lower-cased, every run of
  characters other than letters and digits replaced by one space, trimmed; empty -> NULL.
  "UnitedHealthcare, Inc." -> "unitedhealthcare inc"; "AETNA  (PPO)" -> "aetna ppo".
-#}
{% macro payer_text_key(column) -%}
    nullif(trim(regexp_replace(lower(cast({{ column }} as varchar)), '[^a-z0-9]+', ' ', 'g')), '')
{%- endmacro %}

{#-
  product_from_text(text): the insurance product named in a normalised "plan payer" text, first
  match wins: SNP, PFFS, HDHP, EPO, POS, HMO, PPO, FFS (traditional / fee-for-service); else
  'unknown'. SNP and PFFS come first because "HMO D-SNP" is an SNP and "PFFS" plans are not PPOs.
-#}
{% macro product_from_text(text) -%}
    case
        when regexp_matches({{ text }}, '\b(d ?snp|c ?snp|i ?snp|snp|special needs)\b') then 'SNP'
        when regexp_matches({{ text }}, '\b(pffs|private fee for service)\b') then 'PFFS'
        when regexp_matches({{ text }}, '\b(hdhp|high deductible|hsa)\b') then 'HDHP'
        when regexp_matches({{ text }}, '\b(epo|exclusive provider)\b') then 'EPO'
        when regexp_matches({{ text }}, '\b(pos|point of service|open access)\b') then 'POS'
        when regexp_matches({{ text }}, '\b(hmo|health maintenance)\b') then 'HMO'
        when regexp_matches({{ text }}, '\b(ppo|preferred provider|choice plus)\b') then 'PPO'
        when regexp_matches({{ text }}, '\b(ffs|fee for service|traditional|original medicare|indemnity)\b') then 'FFS'
        else 'unknown'
    end
{%- endmacro %}

{% macro payer_classes() -%}
    {{ return(['commercial', 'medicare_advantage', 'managed_medicaid', 'medicare_ffs', 'medicaid_ffs', 'other', 'unknown']) }}
{%- endmacro %}

{% macro products() -%}
    {{ return(['HMO', 'PPO', 'EPO', 'POS', 'HDHP', 'PFFS', 'SNP', 'FFS', 'unknown']) }}
{%- endmacro %}
