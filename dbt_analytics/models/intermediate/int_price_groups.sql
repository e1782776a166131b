{{ hospital_incremental_config('int_hospital_version_fingerprints') }}
/* depends_on: {{ ref('int_hospital_version_fingerprints') }} (read by the incremental macros) */

{#-
  The narrow first pass over the price history: one row per distinct combination of the raw
  (as published) hospital_key, file_sha256, hospital_name, last_updated_on, template_version,
  payer_name, plan_name and charge_kind, with row counts and value null counts. Only
  low-cardinality columns are grouped (they repeat on every row of a file), so the pass is a
  cheap dictionary-friendly aggregate; the staging cleaning rules (macros/price_columns.sql, the
  ones stg_prices applies to every row) are then applied to these few thousand rows instead.

  Everything that only needs counts per file version x payer pair x charge kind is derived from
  here (int_payer_map's pair frequencies, mart_hospital_summary's counts, the value-contract
  test), and int_price_facts uses it to turn the raw key strings into integer ids.

  Incremental by hospital (macros/incremental_by_hospital.sql): an incremental build reads only
  the hospitals whose file versions changed (int_hospital_version_fingerprints) and deletes the
  rows of changed or gone hospitals.
-#}

with raw_groups as (

    select
        hospital_key                                    as raw_hospital_key,
        file_sha256                                     as raw_file_sha256,
        payer_name                                      as raw_payer_name,
        plan_name                                       as raw_plan_name,
        charge_kind                                     as raw_charge_kind,
        hospital_name                                   as raw_hospital_name,
        last_updated_on                                 as raw_last_updated_on,
        template_version                                as raw_template_version,
        count(*)                                        as n_rows,
        count(*) filter (where amount is null)          as n_amount_null,
        count(*) filter (where percentage is null)      as n_percentage_null,
        count(*) filter (where value_text is null)      as n_value_text_null
    from {{ ref('stg_prices_history') }}
    where {{ hospital_filter('hospital_key', 'int_hospital_version_fingerprints') }}
    group by all

),

cleaned as (

    select
        *,
        {{ clean_price_column('hospital_key', 'raw_hospital_key') }}          as hospital_key,
        {{ clean_price_column('file_sha256', 'raw_file_sha256') }}            as file_sha256,
        {{ clean_price_column('payer_name', 'raw_payer_name') }}              as payer_name,
        {{ clean_price_column('plan_name', 'raw_plan_name') }}                as plan_name,
        {{ clean_price_column('charge_kind', 'raw_charge_kind') }}            as charge_kind,
        {{ clean_price_column('hospital_name', 'raw_hospital_name') }}        as hospital_name,
        {{ clean_price_column('last_updated_on', 'raw_last_updated_on') }}    as last_updated_on,
        {{ clean_price_column('template_version', 'raw_template_version') }}  as template_version
    from raw_groups

)

select
    versions.version_id,
    versions.hospital_id,
    versions.is_current,
    {{ star_exclude(['n_rows', 'n_amount_null', 'n_percentage_null', 'n_value_text_null'], 'cleaned.') }},
    cleaned.charge_kind in {{ sql_list(item_level_charge_kinds()) }} as is_item_level,
    cleaned.n_rows,
    cleaned.n_amount_null,
    cleaned.n_percentage_null,
    cleaned.n_value_text_null,
    fingerprints.fingerprint
from cleaned
-- Like int_prices: rows of a file the version list does not know are left out.
inner join {{ ref('int_price_versions') }} as versions
    on cleaned.hospital_key = versions.hospital_key
    and cleaned.file_sha256 = versions.file_sha256
inner join {{ ref('int_hospital_version_fingerprints') }} as fingerprints
    on versions.hospital_id = fingerprints.hospital_id
