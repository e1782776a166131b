{{ config(materialized='table') }}

{#-
  The payer mapping review queue: what neither the rules (price_pipeline.lib.prices.payers) nor the
  reviewers' seed could decide, most frequent first — pairs whose payer class is 'unknown' or
  that have no canonical payer. Pairs the rules decided are not listed. Reviewers add rows to
  seeds/payer_plan_map.csv (bumping mapping_version) or a brand to seeds/payer_brands.csv; the
  next dbt build applies them.
-#}

select
    cast(row_number() over (order by n_prices desc, n_hospitals desc, payer_name{{ nulls_last() }}, plan_name{{ nulls_last() }}) as integer)
                                  as review_rank,
    payer_plan_key,
    payer_name,
    plan_name,
    payer_key,
    plan_key,
    case
        when payer_class = 'unknown' and payer_canonical is null then 'no_payer_no_class'
        when payer_class = 'unknown' then 'unknown_payer_class'
        else 'no_canonical_payer'
    end                           as review_reason,
    normalized_text,
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
where payer_class = 'unknown' or payer_canonical is null
