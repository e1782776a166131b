{#-
  Cross-hospital price distribution per primary_code x primary_code_type (the harmonised code
  system of int_price_cells, published types beside it) x setting x charge_kind x drug unit
  type (drug cells compare prices per unit) x payer_class over the current file versions, with
  the code's most common description. Hospital-weighted: each hospital
  first collapses to its own median for the cell (int_hospital_cell_stats), and the percentiles
  are taken over those hospital medians, so a hospital that publishes 400 plan rows for a code
  weighs as much as one that publishes 3. min/max are the raw extremes over all prices of the
  cell. Cells with fewer than var('min_hospitals_for_stats') hospitals are suppressed
  (statistics NULL), see schema.yml.
-#}

{%- set min_hospitals = var('min_hospitals_for_stats', 3) %}

with cell_quantiles as (

    -- Grouped on the integer cell and payer class ids; the strings are joined back below, onto
    -- one row per result cell.
    select
        cell_id,
        payer_class_id,
        count(*)                                   as n_hospitals,
        sum(n_prices)                              as n_prices,
        -- One list quantile: the hospital medians of a cell are sorted once, not five times.
        {{ quantiles_cont('hospital_median', ['0.10', '0.25', '0.50', '0.75', '0.90']) }} as quantiles,
        min(min_value)                             as min_value,
        max(max_value)                             as max_value
    from {{ ref('int_hospital_cell_stats') }}
    where version_id in (select version_id from {{ ref('int_price_versions') }} where is_current)
    group by cell_id, payer_class_id

),

cell_names as (

    -- One row per cell; the published code types of its raw spellings kept beside the
    -- harmonised system.
    select
        cell_id,
        any_value(primary_code)         as primary_code,
        any_value(primary_code_type)    as primary_code_type,
        any_value(setting)              as setting,
        any_value(charge_kind)          as charge_kind,
        any_value(drug_unit_type)       as drug_unit_type,
        {{ string_agg_ordered('published_code_type', "', '", 'published_code_type', distinct=true) }} as published_code_types
    from {{ ref('int_price_cells') }}
    where is_distribution_cell
    group by cell_id

),

descriptions as (

    select primary_code, primary_code_type, description
    from {{ ref('int_code_descriptions') }}

),

payer_class_names as (

    select payer_class_id, payer_class from {{ ref('int_payer_classes') }}

),

cells as (

    select
        cell_names.primary_code,
        cell_names.primary_code_type,
        cell_names.setting,
        cell_names.charge_kind,
        cell_names.drug_unit_type,
        cell_names.published_code_types,
        payer_class_names.payer_class,
        {{ star_exclude(['quantiles', 'cell_id', 'payer_class_id'], 'cell_quantiles.') }},
        {{ list_element('quantiles', 1) }} as p10_value,
        {{ list_element('quantiles', 2) }} as p25_value,
        {{ list_element('quantiles', 3) }} as median_value,
        {{ list_element('quantiles', 4) }} as p75_value,
        {{ list_element('quantiles', 5) }} as p90_value
    from cell_quantiles
    inner join cell_names
        on cell_quantiles.cell_id = cell_names.cell_id
    inner join payer_class_names
        on cell_quantiles.payer_class_id = payer_class_names.payer_class_id

)

select
    {{ surrogate_key(['cells.primary_code', 'cells.primary_code_type', 'setting', 'charge_kind', 'drug_unit_type', 'payer_class']) }}
                                                    as distribution_key,
    cells.primary_code,
    cells.primary_code_type,
    cells.published_code_types,
    descriptions.description,
    setting,
    charge_kind,
    drug_unit_type,
    payer_class,
    case
        when charge_kind = 'negotiated_percentage' then 'percent'
        when drug_unit_type is not null then 'usd_per_unit'
        else 'usd'
    end                                             as value_unit,
    cast(n_hospitals as integer)                    as n_hospitals,
    cast(n_prices as bigint)                        as n_prices,
    n_hospitals < {{ min_hospitals }}               as suppressed,
    -- Rounded to cents (percentages to 1/100 %). The quantiles of one sorted list are ordered,
    -- but float noise can put an interpolated p10 a hair above a median that sits on a half
    -- cent (15665.195000001 vs 15665.194999999), and rounding then splits them by a cent. So
    -- each statistic is rounded and then held to its neighbour towards the median: the order
    -- min <= p10 <= p25 <= median <= p75 <= p90 <= max always holds, at most a cent from the
    -- unrounded value.
    case when n_hospitals >= {{ min_hospitals }} then round(median_value, 2) end as median_value,
    case when n_hospitals >= {{ min_hospitals }} then
        least(round(p10_value, 2), round(p25_value, 2), round(median_value, 2)) end as p10_value,
    case when n_hospitals >= {{ min_hospitals }} then
        least(round(p25_value, 2), round(median_value, 2)) end as p25_value,
    case when n_hospitals >= {{ min_hospitals }} then
        greatest(round(p75_value, 2), round(median_value, 2)) end as p75_value,
    case when n_hospitals >= {{ min_hospitals }} then
        greatest(round(p90_value, 2), round(p75_value, 2), round(median_value, 2)) end as p90_value,
    case when n_hospitals >= {{ min_hospitals }} then
        least(round(min_value, 2), round(p10_value, 2), round(p25_value, 2), round(median_value, 2)) end as min_value,
    case when n_hospitals >= {{ min_hospitals }} then
        greatest(round(max_value, 2), round(p90_value, 2), round(p75_value, 2), round(median_value, 2)) end as max_value
from cells
left join descriptions
    on cells.primary_code = descriptions.primary_code
    and cells.primary_code_type is not distinct from descriptions.primary_code_type
