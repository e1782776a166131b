{#-
  How each hospital's prices move across its file versions. Grain: hospital_key x file version
  (every version kept in the price history). For each version: its size, its median gross and
  negotiated dollar cell values, and a chained price index: cells (code x setting x kind x payer
  class) present in both this version and the previous one are compared, change_vs_previous_pct
  is 100 x (geometric mean of new/old cell medians - 1), and price_index_vs_first chains those
  changes from 100 at the hospital's first version.
-#}

with cells as (

    -- Integer-keyed (version_id, cell_id, payer_class_id); matching a cell across versions is
    -- an integer join.
    select * from {{ ref('int_hospital_cell_stats') }}

),

cell_kinds as (

    select distinct cell_id, charge_kind from {{ ref('int_price_cells') }} where is_distribution_cell

),

versions as (

    select * from {{ ref('int_price_versions') }}

),

per_version as (

    select
        cells.version_id,
        count(*)                                                              as n_cells,
        sum(cells.n_prices)                                                   as n_numeric_prices,
        median(cells.hospital_median) filter (where cell_kinds.charge_kind = 'gross') as median_gross,
        median(cells.hospital_median) filter (where cell_kinds.charge_kind = 'negotiated_dollar')
                                                                              as median_negotiated_dollar
    from cells
    inner join cell_kinds
        on cells.cell_id = cell_kinds.cell_id
    group by cells.version_id

),

matched as (

    select
        versions.version_id,
        count(*)                                                   as n_cells_matched,
        exp(avg(ln(new_cells.hospital_median / old_cells.hospital_median))) as geo_ratio
    from versions
    inner join versions as previous
        on versions.hospital_key = previous.hospital_key
        and versions.previous_file_sha256 = previous.file_sha256
    inner join cells as new_cells
        on versions.version_id = new_cells.version_id
    inner join cells as old_cells
        on previous.version_id = old_cells.version_id
        and new_cells.cell_id = old_cells.cell_id
        and new_cells.payer_class_id = old_cells.payer_class_id
    where new_cells.hospital_median > 0 and old_cells.hospital_median > 0
    group by versions.version_id

)

select
    {{ surrogate_key(['versions.hospital_key', 'versions.file_sha256']) }} as trend_key,
    versions.hospital_key,
    versions.file_sha256,
    versions.version_seq,
    versions.previous_file_sha256,
    versions.last_updated_on,
    versions.template_version,
    versions.is_current,
    versions.first_seen_at,
    versions.superseded_at,
    versions.n_rows                                                as n_rows,
    -- prices only (numeric values; count and algorithm rows are not prices)
    coalesce(per_version.n_numeric_prices, 0)                      as n_prices,
    coalesce(per_version.n_cells, 0)                               as n_cells,
    round(per_version.median_gross, 2)                             as median_gross,
    round(per_version.median_negotiated_dollar, 2)                 as median_negotiated_dollar,
    coalesce(matched.n_cells_matched, 0)                           as n_cells_matched,
    round(100 * (matched.geo_ratio - 1), 2)                        as change_vs_previous_pct,
    round(100 * exp(sum(ln(coalesce(matched.geo_ratio, 1))) over (
        partition by versions.hospital_key order by versions.version_seq
        rows between unbounded preceding and current row
    )), 2)                                                         as price_index_vs_first
from versions
left join per_version
    on versions.version_id = per_version.version_id
left join matched
    on versions.version_id = matched.version_id
