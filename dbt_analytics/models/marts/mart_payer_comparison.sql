{#-
  One row per hospital x payer_name x plan_name of the current prices: how many prices the
  payer-plan has, its median negotiated dollar rate, and how that compares with the same
  hospital's gross charges for the same items (same code, setting, billing class, modifiers,
  description), so "what share of the chargemaster does this plan pay" is comparable across
  hospitals. Canonical payer, plan, product and payer class come from int_payer_map.
-#}

with prices as (

    select * from {{ ref('int_prices_current') }}

),

payer_stats as (

    select
        hospital_key,
        payer_name,
        plan_name,
        count(*)                                                         as n_prices,
        count(*) filter (where charge_kind = 'negotiated_dollar' and amount is not null)
                                                                         as n_negotiated_dollar,
        count(distinct primary_code)                                     as n_codes,
        median(amount) filter (where charge_kind = 'negotiated_dollar')  as median_negotiated_dollar
    from prices
    where payer_name is not null
    group by hospital_key, payer_name, plan_name

),

gross_by_item as (

    select hospital_key, item_key, median(amount) as gross_amount
    from prices
    where charge_kind = 'gross' and amount is not null
    group by hospital_key, item_key

),

compared as (

    select
        negotiated.hospital_key,
        negotiated.payer_name,
        negotiated.plan_name,
        count(distinct negotiated.item_key)                   as n_items_compared,
        median(negotiated.amount)                             as median_negotiated_compared,
        median(gross_by_item.gross_amount)                    as median_gross_same_items,
        median(negotiated.amount / gross_by_item.gross_amount) as median_item_ratio_to_gross
    from prices as negotiated
    inner join gross_by_item
        on negotiated.hospital_key = gross_by_item.hospital_key
        and negotiated.item_key = gross_by_item.item_key
    where negotiated.charge_kind = 'negotiated_dollar'
        and negotiated.amount is not null
        and gross_by_item.gross_amount > 0
    group by negotiated.hospital_key, negotiated.payer_name, negotiated.plan_name

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
    payer_stats.n_prices,
    payer_stats.n_negotiated_dollar,
    payer_stats.n_codes,
    payer_stats.median_negotiated_dollar,
    coalesce(compared.n_items_compared, 0)            as n_items_compared,
    compared.median_negotiated_compared,
    compared.median_gross_same_items,
    compared.median_negotiated_compared / nullif(compared.median_gross_same_items, 0)
                                                      as negotiated_to_gross_ratio,
    compared.median_item_ratio_to_gross
from payer_stats
left join compared
    on payer_stats.hospital_key = compared.hospital_key
    and payer_stats.payer_name = compared.payer_name
    and payer_stats.plan_name is not distinct from compared.plan_name
left join {{ ref('int_payer_map') }} as payer_map
    on payer_stats.payer_name = payer_map.payer_name
    and payer_stats.plan_name is not distinct from payer_map.plan_name
