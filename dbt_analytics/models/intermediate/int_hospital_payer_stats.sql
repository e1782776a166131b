{{ hospital_incremental_config() }}
/* depends_on: {{ ref('int_hospital_fingerprints') }} (read by the incremental macros) */

{#-
  The per-hospital aggregate of mart_payer_comparison: one row per hospital_id x payer_pair_id
  of the current prices (integer keys only), with the counts and medians of the payer's rows and
  of its negotiated dollar rates compared with the same items' gross charges
  (int_current_items). Incremental by hospital (macros/incremental_by_hospital.sql): an
  incremental build aggregates only the changed hospitals' facts; the mart joins the payer
  strings onto this table.
-#}

with cells as (

    select distinct cell_id, code_id, charge_kind = 'negotiated_dollar' as is_negotiated_dollar
    from {{ ref('int_price_cells') }}

),

-- `negotiated` is read by two aggregates: NOT MATERIALIZED, so each re-reads the narrow
-- int_price_facts columns instead of DuckDB materialising ~45 M joined rows in between.
negotiated as {{ cte_not_materialized() }}(

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
        and {{ hospital_id_filter('facts.hospital_id', current_only=true) }}

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
    inner join (
        select item_id, gross_amount from {{ ref('int_current_items') }}
        where {{ hospital_id_filter('hospital_id', current_only=true) }}
    ) as items
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

)

select
    per_payer.*,
    fingerprints.fingerprint
from per_payer
inner join {{ ref('int_hospital_fingerprints') }} as fingerprints
    on per_payer.hospital_id = fingerprints.hospital_id
