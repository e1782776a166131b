{#-
  One row per price fact of every file version kept in the lake's price history (all versions,
  current and superseded) of stg_prices_history, cleaned by the staging rules of
  macros/price_columns.sql: typed, trimmed, enums lower-cased, codes upper-cased. A view: the
  Parquet files are read by the models that aggregate them, never copied.
  Codes are already cleaned by code type in the normaliser (price_pipeline.lib.prices.codes).
-#}

with cleaned as (

    select
        {{ clean_price_column('hospital_key') }}             as hospital_key,
        {{ clean_price_column('file_sha256') }}              as file_sha256,
        {{ clean_price_column('source_row') }}               as source_row,
        {{ clean_price_column('source_path') }}              as source_path,
        {{ clean_price_column('hospital_name') }}            as hospital_name,
        {{ clean_price_column('last_updated_on') }}          as last_updated_on,
        {{ clean_price_column('template_version') }}         as template_version,
        {{ clean_price_column('description') }}              as description,
        {{ clean_price_column('setting') }}                  as setting,
        {{ clean_price_column('billing_class') }}            as billing_class,
        {{ clean_price_column('modifiers') }}                as modifiers,
        {{ clean_price_column('drug_unit_of_measurement') }} as drug_unit_of_measurement,
        {{ clean_price_column('drug_type_of_measurement') }} as drug_type_of_measurement,
        {{ clean_price_column('primary_code') }}             as primary_code,
        {{ clean_price_column('primary_code_type') }}        as primary_code_type,
        codes,
        {{ clean_price_column('payer_name') }}               as payer_name,
        {{ clean_price_column('plan_name') }}                as plan_name,
        {{ clean_price_column('charge_kind') }}              as charge_kind,
        {{ clean_price_column('amount') }}                   as amount,
        {{ clean_price_column('percentage') }}               as percentage,
        {{ clean_price_column('value_text') }}               as value_text,
        {{ count_low_high('value_text', 'charge_kind') }},
        {{ clean_price_column('methodology') }}              as methodology,
        {{ clean_price_column('additional_payer_notes') }}   as additional_payer_notes,
        {{ clean_price_column('additional_generic_notes') }} as additional_generic_notes
    from {{ ref('stg_prices_history') }}

)

select
    {{ surrogate_key([
        'hospital_key', 'file_sha256', 'source_row', 'source_path',
        'description', 'primary_code', 'primary_code_type', 'setting', 'billing_class',
        'modifiers', 'drug_unit_of_measurement', 'drug_type_of_measurement',
        'payer_name', 'plan_name', 'charge_kind'
    ]) }}                                                    as price_key,
    {{ surrogate_key(item_key_columns()) }}                 as item_key,
    *,
    charge_kind in {{ sql_list(item_level_charge_kinds()) }} as is_item_level
from cleaned
