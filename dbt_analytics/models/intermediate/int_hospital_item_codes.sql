{{ hospital_incremental_config() }}
/* depends_on: {{ ref('int_hospital_fingerprints') }} (read by the incremental macros) */

{#-
  The rows of mart_item_codes (the codes bridge: what they mean is described there) with the
  hospital_id and the hospital's fingerprint, incremental by hospital
  (macros/incremental_by_hospital.sql): an incremental build reads only the changed hospitals'
  item rows. The mart copies it without those two columns; this model is the one that computes
  them.

  Cost: `codes` is a list column, and decoding it on every price row is the most expensive read
  of the lake. An item's codes are the same on each of its rows (the normaliser writes the
  item's code list on each charge of the item), so they are read from the rows without a payer
  (gross, discounted cash, min, max: a few per item, which the Parquet reader picks by the
  pushed-down `payer_name is null` filter on stg_prices_history) and, only for hospitals where
  some current item has no such row (int_current_items) or a payer is blank, from all of that
  hospital's current rows. The item columns are cleaned after the distinct, with the staging
  rules (macros/price_columns.sql).
-#}

-- depends_on: {{ ref('int_current_items') }}, {{ ref('int_price_versions') }}, {{ ref('int_price_groups') }}
{#- Hospitals whose item rows are not all found by the raw `payer_name is null` filter: some
    current item has no row without a payer, or some row has a blank (not NULL) payer. -#}
{%- set other_hospitals = [] -%}
{%- if execute -%}
    {%- set found = run_query(
        "select versions.hospital_key from " ~ ref('int_current_items') ~ " as items"
        ~ " join " ~ ref('int_price_versions') ~ " as versions on items.hospital_id = versions.hospital_id"
        ~ " where items.n_item_level_prices = 0"
        ~ " union select hospital_key from " ~ ref('int_price_groups')
        ~ " where is_current and payer_name is null and raw_payer_name is not null order by 1") -%}
    {%- set other_hospitals = found.columns[0].values() | list -%}
{%- endif %}

with current_files as (

    select distinct raw_hospital_key, raw_file_sha256, hospital_key
    from {{ ref('int_price_groups') }}
    where is_current

),

item_rows as (

    -- Distinct first, so the cleaning and the md5 item_key run once per item, not per row.
    select distinct
        current_files.hospital_key,
        history.description,
        history.primary_code,
        history.primary_code_type,
        history.setting,
        history.billing_class,
        history.modifiers,
        history.drug_unit_of_measurement,
        history.drug_type_of_measurement,
        history.codes
    from {{ ref('stg_prices_history') }} as history
    inner join current_files
        on history.hospital_key = current_files.raw_hospital_key
        and history.file_sha256 = current_files.raw_file_sha256
    where (history.payer_name is null
    {%- if other_hospitals %}
        or history.hospital_key in (
            {%- for key in other_hospitals -%}
            '{{ key | replace("'", "''") }}'{{ ", " if not loop.last }}
            {%- endfor -%})
    {%- endif %})
        and {{ hospital_filter('history.hospital_key', current_only=true) }}

),

cleaned as (

    select
        hospital_key,
        {%- for column in item_key_columns() if column not in ('hospital_key', 'codes') %}
        {{ clean_price_column(column) }} as {{ column }},
        {%- endfor %}
        codes
    from item_rows

),

item_codes as (

    -- unnest in the select list (not a lateral join, which DuckDB plans as a delim join over
    -- the ~2 M item rows at 50 M prices) and the md5 item key once per item, before unnesting.
    select distinct
        item_key,
        hospital_key,
        primary_code,
        primary_code_type,
        code.code        as code,
        code.type        as code_type
    from (
        select
            {{ surrogate_key(item_key_columns()) }}  as item_key,
            hospital_key,
            primary_code,
            primary_code_type,
            {{ unnest_list('codes') }}                            as code
        from cleaned
    ) as item_code_rows
    where code.code is not null

)

select
    codes.*,
    fingerprints.hospital_id,
    fingerprints.fingerprint
from (
select
    {{ surrogate_key(['item_key', 'code_type', 'code']) }}   as item_code_key,
    item_key,
    any_value(hospital_key)                                   as hospital_key,
    code_type,
    code,
    bool_or(code = primary_code and code_type is not distinct from primary_code_type) as is_primary,
    -- price_pipeline.lib.prices.codes, registered by the dbt plugin (the normaliser's own definitions)
    pp_code_system(code, pp_clean_code_type(code_type))       as code_system,
    pp_code_well_formed(code, pp_clean_code_type(code_type))  as is_well_formed
from item_codes
group by item_key, code_type, code
) as codes
inner join {{ ref('int_hospital_fingerprints') }} as fingerprints
    on codes.hospital_key = fingerprints.hospital_key
