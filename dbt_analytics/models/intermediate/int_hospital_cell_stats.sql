{{ config(materialized='table') }}

{#-
  The cells that the distribution, index and trend marts share: per hospital x file version x
  distribution cell (primary_code x primary_code_type x setting x charge_kind x payer_class),
  the hospital's own median, extremes and row count. One aggregate over int_price_facts; the
  payer class comes from int_payer_map by integer payer_pair_id. Numeric charge kinds only
  (negotiated_algorithm and count are text); rows without a primary_code are not comparable
  and left out. Item-level kinds have payer_class 'not_applicable'.
-#}

with payer_classes as (

    select payer_pair_id, payer_class from {{ ref('int_payer_map') }}

),

cells as (

    select
        facts.version_id,
        facts.primary_code,
        facts.primary_code_type,
        facts.setting,
        facts.charge_kind,
        case
            when facts.payer_pair_id is null then 'not_applicable'
            else coalesce(payer_classes.payer_class, 'unknown')
        end                     as payer_class,
        count(*)                as n_prices,
        median(facts.value)     as hospital_median,
        min(facts.value)        as min_value,
        max(facts.value)        as max_value
    from {{ ref('int_price_facts') }} as facts
    left join payer_classes
        on facts.payer_pair_id = payer_classes.payer_pair_id
    where facts.primary_code is not null
        and facts.charge_kind in {{ sql_list(numeric_charge_kinds()) }}
        and facts.value is not null
    group by all

)

select
    versions.hospital_key,
    versions.file_sha256,
    versions.version_seq,
    versions.is_current,
    cells.primary_code,
    cells.primary_code_type,
    cells.setting,
    cells.charge_kind,
    cells.payer_class,
    cells.n_prices,
    cells.hospital_median,
    cells.min_value,
    cells.max_value
from cells
inner join {{ ref('int_price_versions') }} as versions
    on cells.version_id = versions.version_id
