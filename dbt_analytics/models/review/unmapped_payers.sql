{{ config(materialized='table') }}

{#-
  The payer mapping review queue: raw payer_name x plan_name strings that the seed mapping does
  not cover, most frequent first. A pair is listed when no canonical payer was found
  (mapping_method 'unmapped'), when only a regex rule found one (mapping_method 'rule', to be
  confirmed into seeds/payer_plan_map.csv), or when its payer class is 'unknown'. Reviewers add
  rows to payer_plan_map.csv (bumping mapping_version); the next dbt build applies them.
-#}

select
    cast(row_number() over (order by n_prices desc, n_hospitals desc, payer_name, plan_name) as integer)
                                  as review_rank,
    payer_plan_key,
    payer_name,
    plan_name,
    payer_key,
    plan_key,
    case
        when mapping_method = 'unmapped' then 'no_canonical_payer'
        when mapping_method = 'rule' then 'rule_match_unconfirmed'
        else 'unknown_payer_class'
    end                           as review_reason,
    payer_canonical               as suggested_payer_canonical,
    plan_canonical                as suggested_plan_canonical,
    product                       as suggested_product,
    payer_class                   as suggested_payer_class,
    mapping_method,
    mapping_confidence,
    n_prices,
    n_current_prices,
    n_hospitals,
    first_published_on,
    last_published_on,
    example_hospital_key
from {{ ref('int_payer_map') }}
where mapping_method in ('unmapped', 'rule') or payer_class = 'unknown'
