{{ config(materialized='table') }}

{#-
  One description per code for the marts that have no item dimension (mart_price_distribution):
  per cleaned primary_code x harmonised primary_code_type (int_price_cells), the description
  published by the most hospitals for it in their current files (ties: the alphabetically
  first), and how many distinct descriptions the hospitals use. Read from the rows without a
  payer only (gross, cash, min, max: a few per item, picked by the pushed-down
  `payer_name is null` filter), so the cost is that of the item rows, not of every price.
-#}

with item_rows as (

    select distinct
        source.hospital_key,
        source.primary_code,
        source.primary_code_type,
        {{ clean_text('source.description') }}   as description
    from {{ source('history', 'prices_history') }} as source
    inner join (
        select distinct raw_hospital_key, raw_file_sha256 from {{ ref('int_price_groups') }} where is_current
    ) as current_files
        on source.hospital_key = current_files.raw_hospital_key
        and source.file_sha256 = current_files.raw_file_sha256
    where source.payer_name is null
        and source.primary_code is not null

),

codes as (

    select distinct raw_primary_code, raw_primary_code_type, primary_code, primary_code_type
    from {{ ref('int_price_cells') }}
    where primary_code is not null

),

counted as (

    select
        codes.primary_code,
        codes.primary_code_type,
        item_rows.description,
        count(distinct item_rows.hospital_key) as n_hospitals
    from item_rows
    inner join codes
        on item_rows.primary_code = codes.raw_primary_code
        and item_rows.primary_code_type is not distinct from codes.raw_primary_code_type
    where item_rows.description is not null
    group by all

)

select
    primary_code,
    primary_code_type,
    any_value(description) filter (where is_first)                             as description,
    max(n_hospitals) filter (where is_first)                                   as n_hospitals_with_description,
    count(*)                                                                   as n_descriptions
from (
    select *, row_number() over (
        partition by primary_code, primary_code_type order by n_hospitals desc, description
    ) = 1 as is_first
    from counted
)
group by primary_code, primary_code_type
