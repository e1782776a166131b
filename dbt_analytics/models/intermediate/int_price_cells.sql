{{ config(materialized='table') }}

{#-
  The cell dictionary: one row per distinct as-published (primary_code, primary_code_type,
  setting, charge_kind) of the price history, with the cleaning of stg_prices applied once per
  distinct value instead of once per price row, and integer ids of the cleaned values:

    cell_id          the cleaned (primary_code, primary_code_type, setting, charge_kind): the
                     distribution cell without the payer class; several raw spellings of one
                     cleaned cell share it;
    code_setting_id  the cleaned (primary_code, primary_code_type, setting), part of the item
                     identity hashed into int_price_facts.item_id;
    code_id          the cleaned primary_code (NULL when there is none), for distinct code counts.

  A narrow read (four dictionary-encoded columns) with a few tens of thousands of result rows.
  int_price_facts joins each price row to it on the raw strings and keeps cell_id, so every
  aggregate downstream groups on integers and joins these strings back onto its small result.
  Ids are only stable within one build.
-#}

with raw_cells as (

    select distinct
        primary_code        as raw_primary_code,
        primary_code_type   as raw_primary_code_type,
        setting             as raw_setting,
        charge_kind         as raw_charge_kind
    from {{ source('history', 'prices_history') }}

),

cleaned as (

    select
        *,
        {{ clean_code('raw_primary_code') }}        as primary_code,
        {{ clean_code('raw_primary_code_type') }}   as primary_code_type,
        {{ clean_enum('raw_setting') }}             as setting,
        {{ clean_enum('raw_charge_kind') }}         as charge_kind
    from raw_cells

)

select
    cast(dense_rank() over (
        order by primary_code, primary_code_type, setting, charge_kind
    ) as integer)                                                     as cell_id,
    cast(dense_rank() over (order by primary_code, primary_code_type, setting) as integer)
                                                                      as code_setting_id,
    case when primary_code is not null
        then cast(dense_rank() over (order by primary_code) as integer) end as code_id,
    raw_primary_code,
    raw_primary_code_type,
    raw_setting,
    raw_charge_kind,
    primary_code,
    primary_code_type,
    setting,
    charge_kind,
    primary_code is not null and charge_kind in {{ sql_list(numeric_charge_kinds()) }} as is_distribution_cell
from cleaned
