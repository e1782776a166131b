{#-
  One row per price fact of every file version kept in the lake's price history (all versions,
  current and superseded): typed, trimmed, enums lower-cased, codes upper-cased. A view: the
  Parquet files are read by the models that aggregate them, never copied.
  Codes are already cleaned by code type in the normaliser (price_pipeline.lib.prices.codes).
-#}

with source as (

    select * from {{ source('history', 'prices_history') }}

),

cleaned as (

    select
        {{ clean_text('hospital_key') }}                     as hospital_key,
        lower({{ clean_text('file_sha256') }})               as file_sha256,
        cast(source_row as bigint)                           as source_row,
        {{ clean_text('source_path') }}                      as source_path,
        {{ clean_text('hospital_name') }}                    as hospital_name,
        cast(last_updated_on as date)                        as last_updated_on,
        {{ clean_text('template_version') }}                 as template_version,
        {{ clean_text('description') }}                      as description,
        {{ clean_enum('setting') }}                          as setting,
        {{ clean_enum('billing_class') }}                    as billing_class,
        {{ clean_code('modifiers') }}                        as modifiers,
        cast(drug_unit_of_measurement as double)             as drug_unit_of_measurement,
        {{ clean_code('drug_type_of_measurement') }}         as drug_type_of_measurement,
        {{ clean_code('primary_code') }}                     as primary_code,
        {{ clean_code('primary_code_type') }}                as primary_code_type,
        codes,
        {{ clean_text('payer_name') }}                       as payer_name,
        {{ clean_text('plan_name') }}                        as plan_name,
        {{ clean_enum('charge_kind') }}                      as charge_kind,
        cast(amount as double)                               as amount,
        cast(percentage as double)                           as percentage,
        {{ clean_text('value_text') }}                       as value_text,
        {{ count_low_high('value_text', 'charge_kind') }},
        {{ clean_text('methodology') }}                      as methodology,
        {{ clean_text('additional_payer_notes') }}           as additional_payer_notes,
        {{ clean_text('additional_generic_notes') }}         as additional_generic_notes
    from source

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
