{{ config(materialized='table') }}

{#-
  One description per code for the marts that have no item dimension (mart_price_distribution):
  per cleaned primary_code x harmonised primary_code_type (int_price_cells), the description
  published by the most hospitals for it in their current files (ties: the alphabetically
  first), and how many distinct descriptions the hospitals use. Read from the rows without a
  payer only (gross, cash, min, max: a few per item, picked by the pushed-down
  `payer_name is null` filter), so the cost is that of the item rows, not of every price; the
  per-hospital distinct descriptions are int_hospital_code_descriptions (incremental by
  hospital), so an incremental build reads only the changed hospitals.
-#}

with item_rows as (

    -- per hospital, incremental by hospital (int_hospital_code_descriptions)
    select hospital_id, raw_primary_code, raw_primary_code_type, description
    from {{ ref('int_hospital_code_descriptions') }}

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
        count(distinct item_rows.hospital_id) as n_hospitals
    from item_rows
    inner join codes
        on item_rows.raw_primary_code = codes.raw_primary_code
        and item_rows.raw_primary_code_type is not distinct from codes.raw_primary_code_type
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
