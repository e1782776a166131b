{#-
  One row per catalogued hospital (removed ones included, flagged, with zero counts) describing
  its current file version (the prices of int_prices_current). Built from small aggregates only:
  file attributes and row counts from int_price_groups, item and code counts from
  int_current_items, payer counts from int_price_groups x int_payer_map.
-#}

with current_groups as (

    select * from {{ ref('int_price_groups') }} where is_current

),

file_stats as (

    select
        hospital_key,
        max(file_sha256)                                         as file_sha256,
        max(hospital_name)                                       as file_hospital_name,
        max(last_updated_on)                                     as last_updated_on,
        max(template_version)                                    as template_version,
        count(distinct payer_name)                               as n_payers,
        count(distinct case when payer_name is not null
            then payer_name || chr(31) || coalesce(plan_name, '') end) as n_payer_plans,
        cast(sum(n_rows) as bigint)                              as n_rows,
        -- prices only: numeric kinds with a value (not count rows or algorithm text)
        cast(coalesce(sum(case
            when charge_kind = 'negotiated_percentage' then n_rows - n_percentage_null
            when charge_kind in {{ sql_list(dollar_charge_kinds()) }} then n_rows - n_amount_null
            else 0 end), 0) as bigint)                           as n_prices,
        cast(coalesce(sum(n_rows) filter (where charge_kind in
            ('negotiated_dollar', 'negotiated_percentage', 'negotiated_algorithm')), 0) as bigint) as n_negotiated,
        cast(coalesce(sum(n_rows) filter (where charge_kind = 'negotiated_dollar'), 0) as bigint) as n_negotiated_dollar
    from current_groups
    group by hospital_key

),

item_stats as (

    select
        versions.hospital_key,
        count(*)                                                 as n_items,
        count(distinct coalesce(items.primary_code_type, '') || ':' || items.primary_code) as n_codes
    from {{ ref('int_current_items') }} as items
    inner join {{ ref('int_hospitals') }} as versions
        on items.hospital_id = versions.hospital_id
    group by versions.hospital_key

),

price_stats as (

    select file_stats.*, coalesce(item_stats.n_items, 0) as n_items, coalesce(item_stats.n_codes, 0) as n_codes
    from file_stats
    left join item_stats
        on file_stats.hospital_key = item_stats.hospital_key

),

file_versions as (

    select hospital_key, count(*) as n_file_versions
    from {{ ref('int_price_versions') }}
    group by hospital_key

)

select
    hospitals.hospital_key,
    coalesce(hospitals.hospital_name, price_stats.file_hospital_name)  as hospital_name,
    hospitals.ccn,
    hospitals.city,
    hospitals.state,
    hospitals.status,
    hospitals.is_active,
    price_stats.hospital_key is not null                            as has_prices,
    price_stats.file_sha256,
    coalesce(file_versions.n_file_versions, 0)                      as n_file_versions,
    price_stats.last_updated_on,
    price_stats.template_version,
    coalesce(price_stats.n_items, 0)                                as n_items,
    coalesce(price_stats.n_codes, 0)                                as n_codes,
    coalesce(price_stats.n_payers, 0)                               as n_payers,
    coalesce(price_stats.n_payer_plans, 0)                          as n_payer_plans,
    coalesce(price_stats.n_rows, 0)                                 as n_rows,
    coalesce(price_stats.n_prices, 0)                               as n_prices,
    coalesce(price_stats.n_negotiated, 0)                           as n_negotiated,
    coalesce(price_stats.n_negotiated_dollar, 0)                    as n_negotiated_dollar,
    price_stats.n_negotiated_dollar / nullif(price_stats.n_negotiated, 0) as negotiated_dollar_share
from {{ ref('stg_hospitals') }} as hospitals
left join price_stats
    on hospitals.hospital_key = price_stats.hospital_key
left join file_versions
    on hospitals.hospital_key = file_versions.hospital_key
