{#-
  One row per hospital x payer_name x plan_name of the current prices: how many prices the
  payer-plan has, its median negotiated dollar rate, and how that compares with the same
  hospital's gross charges for the same items (same code, setting, billing class, modifiers,
  description), so "what share of the chargemaster does this plan pay" is comparable across
  hospitals. Canonical payer, plan, product and payer class come from int_payer_map.

  The per-hospital aggregate over the payer rows of int_price_facts (integer keys: hospital_id,
  payer_pair_id, item_id, the primary code's code_id from int_price_cells) joined to the item
  gross charges of int_current_items is int_hospital_payer_stats (incremental by hospital); the
  strings are joined back here on its small result.
-#}

with per_payer as (

    select {{ star_exclude(['fingerprint']) }} from {{ ref('int_hospital_payer_stats') }}

),

payer_stats as (

    select
        hospitals.hospital_key,
        payer_map.payer_name,
        payer_map.plan_name,
        per_payer.*
    from per_payer
    inner join {{ ref('int_hospitals') }} as hospitals
        on per_payer.hospital_id = hospitals.hospital_id
    inner join {{ ref('int_payer_map') }} as payer_map
        on per_payer.payer_pair_id = payer_map.payer_pair_id

),

compared as (

    select * from payer_stats where n_items_compared > 0

)

select
    {{ surrogate_key(['payer_stats.hospital_key', 'payer_stats.payer_name', 'payer_stats.plan_name']) }}
                                                      as payer_comparison_key,
    payer_stats.hospital_key,
    payer_stats.payer_name,
    payer_stats.plan_name,
    payer_map.payer_canonical,
    payer_map.plan_canonical,
    coalesce(payer_map.product, 'unknown')            as product,
    coalesce(payer_map.payer_class, 'unknown')        as payer_class,
    coalesce(payer_map.mapping_confidence, 0.0)       as mapping_confidence,
    payer_map.payer_class_source,
    payer_map.mapping_method,
    payer_stats.n_rows,
    payer_stats.n_prices,
    payer_stats.n_negotiated_dollar,
    payer_stats.n_codes,
    round(payer_stats.median_negotiated_dollar, 2)    as median_negotiated_dollar,
    coalesce(compared.n_items_compared, 0)            as n_items_compared,
    round(compared.median_negotiated_compared, 2)     as median_negotiated_compared,
    round(compared.median_gross_same_items, 2)        as median_gross_same_items,
    round(compared.median_negotiated_compared / nullif(compared.median_gross_same_items, 0), 4)
                                                      as negotiated_to_gross_ratio,
    round(compared.median_item_ratio_to_gross, 4)     as median_item_ratio_to_gross
from payer_stats
left join compared
    on payer_stats.hospital_key = compared.hospital_key
    and payer_stats.payer_pair_id = compared.payer_pair_id
left join {{ ref('int_payer_map') }} as payer_map
    on payer_stats.payer_pair_id = payer_map.payer_pair_id
