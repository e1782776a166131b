{{ config(severity='warn') }}
-- PRICES_SCHEMA contract: dollar kinds carry `amount`, negotiated_percentage carries
-- `percentage`, negotiated_algorithm and count carry `value_text`, and item-level kinds have no
-- payer. A warning, not an error: it flags a normaliser bug without blocking the marts.
select price_key, hospital_key, charge_kind, payer_name, amount, percentage, value_text
from {{ ref('stg_prices') }}
where (charge_kind = 'negotiated_percentage' and percentage is null)
    or (charge_kind in ('negotiated_algorithm', 'count') and value_text is null)
    or (charge_kind not in ('negotiated_percentage', 'negotiated_algorithm', 'count') and amount is null)
    or (is_item_level and payer_name is not null)
