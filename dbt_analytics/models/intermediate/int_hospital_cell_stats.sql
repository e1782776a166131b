{{ config(materialized='table') }}

{#-
  The one pass over every price fact that the distribution, index and trend marts share: per
  hospital x file version x distribution cell (primary_code x primary_code_type x setting x
  charge_kind x payer_class), the hospital's own median, extremes and row count. Numeric charge
  kinds only (negotiated_algorithm and count are text); rows without a primary_code are not
  comparable and left out. Item-level kinds have payer_class 'not_applicable'.
-#}

with prices as (

    select
        prices.hospital_key,
        prices.file_sha256,
        prices.version_seq,
        prices.is_current,
        prices.primary_code,
        prices.primary_code_type,
        prices.setting,
        prices.charge_kind,
        case
            when prices.payer_name is null then 'not_applicable'
            else coalesce(payer_map.payer_class, 'unknown')
        end as payer_class,
        case
            when prices.charge_kind = 'negotiated_percentage' then prices.percentage
            else prices.amount
        end as value
    from {{ ref('int_prices') }} as prices
    left join {{ ref('int_payer_map') }} as payer_map
        on prices.payer_name = payer_map.payer_name
        and prices.plan_name is not distinct from payer_map.plan_name
    where prices.primary_code is not null
        and prices.charge_kind in {{ sql_list(numeric_charge_kinds()) }}

)

select
    hospital_key,
    file_sha256,
    any_value(version_seq)  as version_seq,
    any_value(is_current)   as is_current,
    primary_code,
    primary_code_type,
    setting,
    charge_kind,
    payer_class,
    count(*)                as n_prices,
    median(value)           as hospital_median,
    min(value)              as min_value,
    max(value)              as max_value
from prices
where value is not null
group by hospital_key, file_sha256, primary_code, primary_code_type, setting, charge_kind, payer_class
