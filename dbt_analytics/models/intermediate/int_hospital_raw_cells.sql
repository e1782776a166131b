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

raw_rows as (

    select
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

-- One distinct after the join to the (small) known-file list, not a distinct per file first:
-- a single aggregate, keyed without the 64-character file_sha256 (20 M-row benchmark lake, a
-- standalone probe on a loaded machine: 4.7-5.4 s instead of 7.6-9.8 s).
select distinct
    known_files.hospital_id,
    raw_rows.primary_code                   as raw_primary_code,
    raw_rows.primary_code_type              as raw_primary_code_type,
    raw_rows.setting                        as raw_setting,
    raw_rows.charge_kind                    as raw_charge_kind,
    raw_rows.drug_type_of_measurement       as raw_drug_type,
    fingerprints.fingerprint
from raw_rows
inner join known_files
    on raw_rows.hospital_key = known_files.raw_hospital_key
    and raw_rows.file_sha256 = known_files.raw_file_sha256
inner join {{ ref('int_hospital_version_fingerprints') }} as fingerprints
    on known_files.hospital_id = fingerprints.hospital_id
