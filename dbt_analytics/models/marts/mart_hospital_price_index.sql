{#-
  How expensive each hospital is relative to its peers. For every distribution cell of the
  hospital's current file that has an unsuppressed market median (mart_price_distribution, at
  least var('min_hospitals_for_stats') hospitals), ratio = hospital median / market median. The
  index is 100 x the geometric mean of those ratios (100 = priced like the median hospital,
  120 = 20 % above), per hospital and index basis: gross, discounted_cash and negotiated_dollar
  (all payer classes). Grain: hospital_key x index_basis.

  Evidence rule: a hospital is ranked only when it has at least var('min_cells_for_index')
  (default 30) compared cells for the basis; below that `evidence` is 'insufficient' and both
  ranks are NULL (the index and its interval are still shown, with their count). The 95 %
  confidence interval is that of the geometric mean: 100 x exp(mean(ln ratio) +/- 1.96 x
  sd(ln ratio) / sqrt(n)), NULL with fewer than two cells. Indexes are rounded to 2 decimals.
-#}

{%- set min_cells = var('min_cells_for_index', 30) %}

with basis_cells as (

    select distinct cell_id, primary_code, primary_code_type, setting, charge_kind, drug_unit_type
    from {{ ref('int_price_cells') }}
    where is_distribution_cell
        and charge_kind in ('gross', 'discounted_cash', 'negotiated_dollar')

),

market as (

    -- The market medians, keyed back to the integer cell and payer class ids (a join on the
    -- strings of the small mart), so the hospital cells below are matched on integers.
    select
        basis_cells.cell_id,
        payer_classes.payer_class_id,
        basis_cells.charge_kind,
        distribution.median_value
    from {{ ref('mart_price_distribution') }} as distribution
    inner join basis_cells
        on distribution.primary_code = basis_cells.primary_code
        and distribution.primary_code_type is not distinct from basis_cells.primary_code_type
        and distribution.setting is not distinct from basis_cells.setting
        and distribution.charge_kind = basis_cells.charge_kind
        and distribution.drug_unit_type is not distinct from basis_cells.drug_unit_type
    inner join {{ ref('int_payer_classes') }} as payer_classes
        on distribution.payer_class = payer_classes.payer_class
    where not distribution.suppressed and distribution.median_value > 0

),

ratios as (

    select
        versions.hospital_id,
        market.charge_kind                                    as index_basis,
        hospital_cells.hospital_median / market.median_value  as ratio
    from {{ ref('int_hospital_cell_stats') }} as hospital_cells
    inner join market
        on hospital_cells.cell_id = market.cell_id
        and hospital_cells.payer_class_id = market.payer_class_id
    inner join {{ ref('int_price_versions') }} as versions
        on hospital_cells.version_id = versions.version_id
    where versions.is_current
        and hospital_cells.hospital_median > 0

),

indexed_by_id as (

    select
        hospital_id,
        index_basis,
        count(*)                                  as n_cells_compared,
        100 * exp(avg(ln(ratio)))                 as price_index,
        100 * exp(avg(ln(ratio)) - 1.96 * stddev_samp(ln(ratio)) / sqrt(count(*))) as ci_low,
        100 * exp(avg(ln(ratio)) + 1.96 * stddev_samp(ln(ratio)) / sqrt(count(*))) as ci_high,
        100 * {{ quantile_cont('ratio', 0.25) }}          as p25_ratio_pct,
        100 * median(ratio)                       as median_ratio_pct,
        100 * {{ quantile_cont('ratio', 0.75) }}          as p75_ratio_pct
    from ratios
    group by hospital_id, index_basis

),

indexed as (

    select
        hospitals.hospital_key,
        {{ star_exclude(['hospital_id'], 'indexed_by_id.') }},
        indexed_by_id.n_cells_compared >= {{ min_cells }} as is_sufficient
    from indexed_by_id
    inner join {{ ref('int_hospitals') }} as hospitals
        on indexed_by_id.hospital_id = hospitals.hospital_id

)

select
    {{ surrogate_key(['indexed.hospital_key', 'indexed.index_basis']) }} as price_index_key,
    indexed.hospital_key,
    hospitals.hospital_name,
    hospitals.state,
    indexed.index_basis,
    cast(indexed.n_cells_compared as integer)   as n_cells_compared,
    case when indexed.is_sufficient then 'sufficient' else 'insufficient' end as evidence,
    round(indexed.price_index, 2)               as price_index,
    round(indexed.ci_low, 2)                    as ci_low,
    round(indexed.ci_high, 2)                   as ci_high,
    round(indexed.p25_ratio_pct, 2)             as p25_ratio_pct,
    round(indexed.median_ratio_pct, 2)          as median_ratio_pct,
    round(indexed.p75_ratio_pct, 2)             as p75_ratio_pct,
    -- Ranked among the hospitals with sufficient evidence only.
    case when indexed.is_sufficient then cast(rank() over (
        partition by indexed.index_basis, indexed.is_sufficient order by indexed.price_index) as integer) end
                                                as rank_national,
    case when indexed.is_sufficient then cast(rank() over (
        partition by indexed.index_basis, indexed.is_sufficient, hospitals.state order by indexed.price_index) as integer) end
                                                as rank_in_state,
    case when indexed.is_sufficient then cast(count(*) over (
        partition by indexed.index_basis, indexed.is_sufficient, hospitals.state) as integer) end
                                                as n_hospitals_in_state
from indexed
left join {{ ref('stg_hospitals') }} as hospitals
    on indexed.hospital_key = hospitals.hospital_key
