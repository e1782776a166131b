{{ config(materialized='table') }}

{#-
  The one row-level read of the price history that every price mart shares: each price fact of
  every kept file version (the rows of int_prices), narrowed to what the marts aggregate and
  keyed by integers instead of strings:

    version_id / hospital_id / is_current  from int_price_versions,
    payer_pair_id                          from int_payer_map (NULL for rows without a payer),
    item_id                                64-bit hash of the cleaned item identity (the same
                                           columns as stg_prices.item_key),

  plus the cleaned cell columns (primary_code, primary_code_type, setting, charge_kind) and the
  numeric value (percentage for negotiated_percentage, else amount). The raw key strings are
  resolved by one hash join on the as-published strings against the few thousand rows of
  int_price_groups, so per row there is no string cleaning of keys, no regex and no md5.
  Cleaning of the cell and item columns is the same as stg_prices.
-#}

with string_keys as (

    -- Raw (hospital_key, file_sha256, payer_name, plan_name) -> integer ids; unique because the
    -- cleaned values are functions of the raw ones.
    select distinct
        groups.raw_hospital_key,
        groups.raw_file_sha256,
        groups.raw_payer_name,
        groups.raw_plan_name,
        groups.hospital_key,
        groups.version_id,
        groups.hospital_id,
        groups.is_current,
        payer_map.payer_pair_id
    from {{ ref('int_price_groups') }} as groups
    left join {{ ref('int_payer_map') }} as payer_map
        on groups.payer_name = payer_map.payer_name
        and groups.plan_name is not distinct from payer_map.plan_name

),

source as (

    select * from {{ source('history', 'prices_history') }}

)

select
    string_keys.version_id,
    string_keys.hospital_id,
    string_keys.is_current,
    string_keys.payer_pair_id,
    hash(
        string_keys.hospital_key,
        {{ clean_text('source.description') }},
        {{ clean_code('source.primary_code') }},
        {{ clean_code('source.primary_code_type') }},
        {{ clean_enum('source.setting') }},
        {{ clean_enum('source.billing_class') }},
        {{ clean_code('source.modifiers') }},
        cast(source.drug_unit_of_measurement as double),
        {{ clean_code('source.drug_type_of_measurement') }}
    )                                                        as item_id,
    {{ clean_code('source.primary_code') }}                  as primary_code,
    {{ clean_code('source.primary_code_type') }}             as primary_code_type,
    {{ clean_enum('source.setting') }}                       as setting,
    {{ clean_enum('source.charge_kind') }}                   as charge_kind,
    case
        when {{ clean_enum('source.charge_kind') }} = 'negotiated_percentage' then cast(source.percentage as double)
        else cast(source.amount as double)
    end                                                      as value
from source
inner join string_keys
    on source.hospital_key = string_keys.raw_hospital_key
    and source.file_sha256 = string_keys.raw_file_sha256
    and source.payer_name is not distinct from string_keys.raw_payer_name
    and source.plan_name is not distinct from string_keys.raw_plan_name
