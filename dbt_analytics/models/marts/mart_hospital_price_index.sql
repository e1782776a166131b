{#-
  How expensive each hospital is relative to its peers. For every distribution cell of the
  hospital's current file that has an unsuppressed market median (mart_price_distribution, at
  least var('min_hospitals_for_stats') hospitals), ratio = hospital median / market median. The
  index is 100 x the geometric mean of those ratios (100 = priced like the median hospital,
  120 = 20 % above), per hospital and index basis: gross, discounted_cash and negotiated_dollar
  (all payer classes). Grain: hospital_key x index_basis.
-#}

{%- set min_hospitals = var('min_hospitals_for_stats', 3) %}

with hospital_cells as (

    select *
    from {{ ref('int_hospital_cell_stats') }}
    where is_current
        and charge_kind in ('gross', 'discounted_cash', 'negotiated_dollar')
        and hospital_median > 0

),

market as (

    select primary_code, primary_code_type, setting, charge_kind, payer_class, median_value
    from {{ ref('mart_price_distribution') }}
    where not suppressed and median_value > 0

),

ratios as (

    select
        hospital_cells.hospital_key,
        hospital_cells.charge_kind                            as index_basis,
        hospital_cells.hospital_median / market.median_value  as ratio
    from hospital_cells
    inner join market
        on hospital_cells.primary_code = market.primary_code
        and hospital_cells.primary_code_type is not distinct from market.primary_code_type
        and hospital_cells.setting is not distinct from market.setting
        and hospital_cells.charge_kind = market.charge_kind
        and hospital_cells.payer_class = market.payer_class

),

indexed as (

    select
        hospital_key,
        index_basis,
        count(*)                                  as n_cells_compared,
        100 * exp(avg(ln(ratio)))                 as price_index,
        100 * quantile_cont(ratio, 0.25)          as p25_ratio_pct,
        100 * median(ratio)                       as median_ratio_pct,
        100 * quantile_cont(ratio, 0.75)          as p75_ratio_pct
    from ratios
    group by hospital_key, index_basis

)

select
    {{ surrogate_key(['indexed.hospital_key', 'indexed.index_basis']) }} as price_index_key,
    indexed.hospital_key,
    hospitals.hospital_name,
    hospitals.state,
    indexed.index_basis,
    cast(indexed.n_cells_compared as integer)   as n_cells_compared,
    indexed.price_index,
    indexed.p25_ratio_pct,
    indexed.median_ratio_pct,
    indexed.p75_ratio_pct,
    cast(rank() over (partition by indexed.index_basis order by indexed.price_index) as integer)
                                                as rank_national,
    cast(rank() over (partition by indexed.index_basis, hospitals.state order by indexed.price_index) as integer)
                                                as rank_in_state,
    cast(count(*) over (partition by indexed.index_basis, hospitals.state) as integer)
                                                as n_hospitals_in_state
from indexed
left join {{ ref('stg_hospitals') }} as hospitals
    on indexed.hospital_key = hospitals.hospital_key
