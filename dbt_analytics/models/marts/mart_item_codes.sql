{#-
  The codes bridge: every (cleaned) code published for each item of the current file versions,
  so an item can be found by any of its codes, not only its primary code. Grain: item_key x
  code_type x code. is_primary marks the item's primary code; is_well_formed says whether the
  cleaned code has the shape of its code system (CPT/HCPCS five characters, MS-DRG three digits,
  RC four digits, NDC eleven digits; other systems have no fixed shape).
-#}

with item_codes as (

    select distinct
        prices.item_key,
        prices.hospital_key,
        prices.primary_code,
        prices.primary_code_type,
        code.code        as code,
        code.type        as code_type
    from {{ ref('int_prices_current') }} as prices,
        unnest(prices.codes) as t(code)
    where code.code is not null

)

select
    {{ surrogate_key(['item_key', 'code_type', 'code']) }}   as item_code_key,
    item_key,
    any_value(hospital_key)                                   as hospital_key,
    code_type,
    code,
    bool_or(code = primary_code and code_type is not distinct from primary_code_type) as is_primary,
    {{ code_is_well_formed('code', 'code_type') }}            as is_well_formed
from item_codes
group by item_key, code_type, code
