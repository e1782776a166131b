{{ hospital_incremental_config() }}
/* depends_on: {{ ref('int_hospital_fingerprints') }} (read by the incremental macros) */

{#-
  The per-version statistics of mart_price_trends, computed per hospital: for every file version
  with distribution cells (int_hospital_cell_stats), its cell count, numeric price count and the
  median of its gross and negotiated dollar cell medians; and, against the hospital's previous
  version, how many cells (cell x payer class) both have and the geometric mean of the new/old
  cell medians. Everything here depends on one hospital's own versions only, so it is
  incremental by hospital (macros/incremental_by_hospital.sql, on int_hospital_fingerprints like
  int_hospital_cell_stats): an incremental build recomputes only the changed hospitals' versions,
  and the mart joins the version list onto this small table.
-#}

with cells as (

    select version_id, hospital_id, cell_id, payer_class_id, n_prices, hospital_median
    from {{ ref('int_hospital_cell_stats') }}
    where {{ hospital_id_filter('hospital_id') }}

),

cell_kinds as (

    select distinct cell_id, charge_kind from {{ ref('int_price_cells') }} where is_distribution_cell

),

versions as (

    select version_id, hospital_id, hospital_key, file_sha256, previous_file_sha256
    from {{ ref('int_price_versions') }}
    where {{ hospital_id_filter('hospital_id') }}

),

per_version as (

    select
        cells.version_id,
        cells.hospital_id,
        count(*)                                                              as n_cells,
        sum(cells.n_prices)                                                   as n_numeric_prices,
        median(cells.hospital_median) filter (where cell_kinds.charge_kind = 'gross') as median_gross,
        median(cells.hospital_median) filter (where cell_kinds.charge_kind = 'negotiated_dollar')
                                                                              as median_negotiated_dollar
    from cells
    inner join cell_kinds
        on cells.cell_id = cell_kinds.cell_id
    group by cells.version_id, cells.hospital_id

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
    per_version.*,
    matched.n_cells_matched,
    matched.geo_ratio,
    fingerprints.fingerprint
from per_version
-- every matched version has cells, so it has a per_version row
left join matched
    on per_version.version_id = matched.version_id
inner join {{ ref('int_hospital_fingerprints') }} as fingerprints
    on per_version.hospital_id = fingerprints.hospital_id
