{#-
  One row per hospital x payer_name x plan_name of the current prices: how many prices the
  payer-plan has, its median negotiated dollar rate, and how that compares with the same
  hospital's gross charges for the same items (same code, setting, billing class, modifiers,
  description), so "what share of the chargemaster does this plan pay" is comparable across
  hospitals. Canonical payer, plan, product and payer class come from int_payer_map.

  One aggregate over the payer rows of int_price_facts (integer keys: hospital_id,
  payer_pair_id, item_id, the primary code's code_id from int_price_cells) joined to the item
  gross charges of int_current_items; the strings are joined back on the small result.
-#}

with cells as (

    select distinct cell_id, code_id, charge_kind = 'negotiated_dollar' as is_negotiated_dollar
    from {{ ref('int_price_cells') }}

),

-- `negotiated` is read by two aggregates: NOT MATERIALIZED, so each re-reads the narrow
-- int_price_facts columns instead of DuckDB materialising ~45 M joined rows in between.
negotiated as not materialized (

    select
        facts.hospital_id,
        facts.payer_pair_id,
        facts.item_id,
        cells.code_id,
        cells.is_negotiated_dollar,
        facts.value
    from {{ ref('int_price_facts') }} as facts
    inner join cells
        on facts.cell_id = cells.cell_id
    where facts.is_current
        and facts.payer_pair_id is not null

),

-- A negotiated dollar rate of an item whose gross charge is known and positive, with that
-- gross charge. Only the second aggregate needs the item join (int_current_items is unique
-- on item_id, so the inner join keeps each rate once).
compared_rates as (

    select
        negotiated.hospital_id,
        negotiated.payer_pair_id,
        negotiated.item_id,
        negotiated.value,
        items.gross_amount
    from negotiated
    inner join {{ ref('int_current_items') }} as items
        on negotiated.item_id = items.item_id
    where negotiated.is_negotiated_dollar
        and negotiated.value is not null
        and items.gross_amount > 0

),

-- Two aggregates instead of one with six holistic states (medians, distinct counts) per
-- group: at 50 M rows the single aggregate needed more than a 6 GB memory limit (holistic
-- states do not spill) and failed or crawled; split, each holds about half and the first is
-- finished (its states freed) before the second starts.
per_payer_all as (

    select
        hospital_id,
        payer_pair_id,
        count(*)                                                         as n_rows,
        -- prices only: rows with a number (count and algorithm rows have none)
        count(value)                                                     as n_prices,
        count(*) filter (where is_negotiated_dollar and value is not null)
                                                                         as n_negotiated_dollar,
        -- distinct primary codes, counted on their integer id (NULL when the row has none)
        count(distinct code_id)                                          as n_codes,
        median(value) filter (where is_negotiated_dollar)                as median_negotiated_dollar
    from negotiated
    group by hospital_id, payer_pair_id

),

per_payer_compared as (

    select
        hospital_id,
        payer_pair_id,
        count(distinct item_id)                                          as n_items_compared,
        median(value)                                                    as median_negotiated_compared,
        median(gross_amount)                                             as median_gross_same_items,
        median(value / gross_amount)                                     as median_item_ratio_to_gross
    from compared_rates
    group by hospital_id, payer_pair_id

),

per_payer as (

    select
        per_payer_all.*,
        coalesce(per_payer_compared.n_items_compared, 0)                 as n_items_compared,
        per_payer_compared.median_negotiated_compared,
        per_payer_compared.median_gross_same_items,
        per_payer_compared.median_item_ratio_to_gross
    from per_payer_all
    left join per_payer_compared
        on per_payer_all.hospital_id = per_payer_compared.hospital_id
        and per_payer_all.payer_pair_id = per_payer_compared.payer_pair_id

),

payer_stats as (

    select
        hospitals.hospital_key,
        payer_map.payer_name,
        payer_map.plan_name,
        per_payer.*
    from per_payer
    inner join (select distinct hospital_id, hospital_key from {{ ref('int_price_versions') }}) as hospitals
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
