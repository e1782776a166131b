{{ config(materialized='table') }}

{#-
  One row per item of the current file versions (item_id, the hash of the item identity of
  stg_prices.item_key, which includes the hospital): its primary code, its median gross charge
  and whether it has any item-level row. One aggregate over int_price_facts shared by
  mart_hospital_summary (item and code counts), mart_payer_comparison (negotiated vs gross of
  the same item) and mart_item_codes (which items have no item-level row).
-#}

select
    item_id,
    any_value(hospital_id)                                           as hospital_id,
    any_value(primary_code)                                          as primary_code,
    any_value(primary_code_type)                                     as primary_code_type,
    count(*)                                                         as n_prices,
    count(*) filter (where payer_pair_id is null)                    as n_item_level_prices,
    median(value) filter (where charge_kind = 'gross' and value is not null) as gross_amount
from {{ ref('int_price_facts') }}
where is_current
group by item_id
