{{ hospital_incremental_config('int_hospital_version_fingerprints') }}
/* depends_on: {{ ref('int_hospital_version_fingerprints') }} (read by the incremental macros) */

{#-
  Per hospital, the distinct as-published (primary_code, primary_code_type, setting,
  charge_kind, drug_type_of_measurement) of its known file versions (every version the version
  list knows, current or not, as int_price_groups): the raw cell spellings that int_price_cells
  cleans once each. A narrow read of five dictionary-encoded columns per hospital.

  Incremental by hospital (macros/incremental_by_hospital.sql), on the file-level fingerprint
  (int_hospital_version_fingerprints, like int_price_groups): an incremental build reads only the
  files of hospitals whose versions changed and deletes the rows of changed or gone hospitals,
  so int_price_cells (the distinct spellings over every hospital of this table) no longer reads
  the whole lake on every build.
-#}

with known_files as (

    -- Rows of a file the version list does not know are left out (as in int_price_groups).
    select distinct raw_hospital_key, raw_file_sha256, hospital_id
    from {{ ref('int_price_groups') }}

),

raw_cells as (

    -- Distinct per file first (a narrow aggregate on dictionary-encoded columns), then per hospital.
    select distinct
        hospital_key,
        file_sha256,
        primary_code,
        primary_code_type,
        setting,
        charge_kind,
        drug_type_of_measurement
    from {{ ref('stg_prices_history') }}
    where {{ hospital_filter('hospital_key', 'int_hospital_version_fingerprints') }}

)

select distinct
    known_files.hospital_id,
    raw_cells.primary_code                  as raw_primary_code,
    raw_cells.primary_code_type             as raw_primary_code_type,
    raw_cells.setting                       as raw_setting,
    raw_cells.charge_kind                   as raw_charge_kind,
    raw_cells.drug_type_of_measurement      as raw_drug_type,
    fingerprints.fingerprint
from raw_cells
inner join known_files
    on raw_cells.hospital_key = known_files.raw_hospital_key
    and raw_cells.file_sha256 = known_files.raw_file_sha256
inner join {{ ref('int_hospital_version_fingerprints') }} as fingerprints
    on known_files.hospital_id = fingerprints.hospital_id
