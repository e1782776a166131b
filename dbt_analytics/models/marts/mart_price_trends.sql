{#-
  How each hospital's prices move across its file versions. Grain: hospital_key x file version
  (every version kept in the price history). For each version: its size, its median gross and
  negotiated dollar cell values, and a chained price index: cells (code x setting x kind x payer
  class) present in both this version and the previous one are compared, change_vs_previous_pct
  is 100 x (geometric mean of new/old cell medians - 1), and price_index_vs_first chains those
  changes from 100 at the hospital's first version.
-#}

with cells as (

    select * from {{ ref('int_hospital_cell_stats') }}

),

versions as (

    select * from {{ ref('int_price_versions') }}

),

per_version as (

    select
        hospital_key,
        file_sha256,
        count(*)                                                              as n_cells,
        sum(n_prices)                                                         as n_numeric_prices,
        median(hospital_median) filter (where charge_kind = 'gross')          as median_gross,
        median(hospital_median) filter (where charge_kind = 'negotiated_dollar') as median_negotiated_dollar
    from cells
    group by hospital_key, file_sha256

),

matched as (

    select
        versions.hospital_key,
        versions.file_sha256,
        count(*)                                                   as n_cells_matched,
        exp(avg(ln(new_cells.hospital_median / old_cells.hospital_median))) as geo_ratio
    from versions
    inner join cells as new_cells
        on versions.hospital_key = new_cells.hospital_key
        and versions.file_sha256 = new_cells.file_sha256
    inner join cells as old_cells
        on versions.hospital_key = old_cells.hospital_key
        and versions.previous_file_sha256 = old_cells.file_sha256
        and new_cells.primary_code = old_cells.primary_code
        and new_cells.primary_code_type is not distinct from old_cells.primary_code_type
        and new_cells.setting is not distinct from old_cells.setting
        and new_cells.charge_kind = old_cells.charge_kind
        and new_cells.payer_class = old_cells.payer_class
    where new_cells.hospital_median > 0 and old_cells.hospital_median > 0
    group by versions.hospital_key, versions.file_sha256

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
    versions.n_rows                                                as n_prices,
    coalesce(per_version.n_cells, 0)                               as n_cells,
    per_version.median_gross,
    per_version.median_negotiated_dollar,
    coalesce(matched.n_cells_matched, 0)                           as n_cells_matched,
    100 * (matched.geo_ratio - 1)                                  as change_vs_previous_pct,
    100 * exp(sum(ln(coalesce(matched.geo_ratio, 1))) over (
        partition by versions.hospital_key order by versions.version_seq
        rows between unbounded preceding and current row
    ))                                                             as price_index_vs_first
from versions
left join per_version
    on versions.hospital_key = per_version.hospital_key
    and versions.file_sha256 = per_version.file_sha256
left join matched
    on versions.hospital_key = matched.hospital_key
    and versions.file_sha256 = matched.file_sha256
