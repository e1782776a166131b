{{ config(severity='warn') }}
-- PRICES_SCHEMA contract: dollar kinds carry `amount`, negotiated_percentage carries
-- `percentage`, negotiated_algorithm and count carry `value_text`, and item-level kinds have no
-- payer. A warning, not an error: it flags a normaliser bug without blocking the marts.
-- Checked on int_price_groups (null counts per file version x payer pair x charge kind, from the
-- same pass that builds it) instead of re-reading every price row; returns the offending groups
-- with how many of their rows break each rule.
select
    hospital_key,
    file_sha256,
    charge_kind,
    payer_name,
    plan_name,
    case when charge_kind = 'negotiated_percentage' then n_percentage_null else 0 end   as n_missing_percentage,
    case when charge_kind in ('negotiated_algorithm', 'count') then n_value_text_null else 0 end as n_missing_value_text,
    case when charge_kind not in ('negotiated_percentage', 'negotiated_algorithm', 'count')
         then n_amount_null else 0 end                                                   as n_missing_amount,
    case when is_item_level and payer_name is not null then n_rows else 0 end           as n_item_level_with_payer
from {{ ref('int_price_groups') }}
where (charge_kind = 'negotiated_percentage' and n_percentage_null > 0)
    or (charge_kind in ('negotiated_algorithm', 'count') and n_value_text_null > 0)
    or (charge_kind not in ('negotiated_percentage', 'negotiated_algorithm', 'count') and n_amount_null > 0)
    or (is_item_level and payer_name is not null)
