{#-
  How each hospital's prices move across its file versions. Grain: hospital_key x file version
  (every version kept in the price history). For each version: its size, its median gross and
  negotiated dollar cell values, and a chained price index: cells (code x setting x kind x payer
  class) present in both this version and the previous one are compared, change_vs_previous_pct
  is 100 x (geometric mean of new/old cell medians - 1), and price_index_vs_first chains those
  changes from 100 at the hospital's first version.

  The per-version statistics are computed per hospital in int_hospital_version_trends
  (incremental by hospital: a hospital's trend depends on its own versions only); this mart joins
  the version list onto them and chains the index.
-#}

with versions as (

    select * from {{ ref('int_price_versions') }}

),

per_version as (

    -- per version: cell and price counts, median cell values, the match with the previous
    -- version; computed per hospital (incremental by hospital)
    select {{ star_exclude(['hospital_id', 'fingerprint']) }} from {{ ref('int_hospital_version_trends') }}

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
    coalesce(per_version.n_cells_matched, 0)                       as n_cells_matched,
    round(100 * (per_version.geo_ratio - 1), 2)                    as change_vs_previous_pct,
    round(100 * exp(sum(ln(coalesce(per_version.geo_ratio, 1))) over (
        partition by versions.hospital_key order by versions.version_seq
        rows between unbounded preceding and current row
    )), 2)                                                         as price_index_vs_first
from versions
left join per_version
    on versions.version_id = per_version.version_id
