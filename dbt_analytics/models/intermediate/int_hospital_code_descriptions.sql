{{ hospital_incremental_config() }}
/* depends_on: {{ ref('int_hospital_fingerprints') }} (read by the incremental macros) */

{#-
  Per hospital, the distinct (raw primary_code, raw primary_code_type, cleaned description) of
  the item rows (rows without a payer: gross, cash, min, max, picked by the pushed-down
  `payer_name is null` filter) of its current file, for int_code_descriptions' count of
  hospitals per description. Incremental by hospital (macros/incremental_by_hospital.sql): an
  incremental build reads only the changed hospitals' item rows.
-#}

with current_files as (

    select distinct raw_hospital_key, raw_file_sha256, hospital_id
    from {{ ref('int_price_groups') }}
    where is_current

),

item_rows as (

    select distinct
        current_files.hospital_id,
        history.primary_code                      as raw_primary_code,
        history.primary_code_type                 as raw_primary_code_type,
        {{ clean_price_column('description', 'history.description') }} as description
    from {{ ref('stg_prices_history') }} as history
    inner join current_files
        on history.hospital_key = current_files.raw_hospital_key
        and history.file_sha256 = current_files.raw_file_sha256
    where history.payer_name is null
        and history.primary_code is not null
        and {{ hospital_filter('history.hospital_key', current_only=true) }}

)

select
    item_rows.*,
    fingerprints.fingerprint
from item_rows
inner join {{ ref('int_hospital_fingerprints') }} as fingerprints
    on item_rows.hospital_id = fingerprints.hospital_id
where item_rows.description is not null
