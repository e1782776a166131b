{{ config(materialized='table') }}

{#-
  One row per payer_name x plan_name of the current prices, classified by the first rule of
  the payer_class_rules seed (lowest rule_priority) whose RE2 pattern matches the lower-cased
  text "payer_name | plan_name". No rule matching -> 'unknown'.
-#}

with payer_plans as (

    select distinct payer_name, plan_name
    from {{ ref('int_prices_current') }}
    where payer_name is not null

),

rules as (

    select
        cast(rule_priority as integer)   as rule_priority,
        cast(pattern as varchar)         as pattern,
        cast(payer_class as varchar)     as payer_class
    from {{ ref('payer_class_rules') }}

),

matches as (

    select
        payer_plans.payer_name,
        payer_plans.plan_name,
        rules.rule_priority,
        rules.pattern,
        rules.payer_class
    from payer_plans
    inner join rules
        on regexp_matches(
            lower(payer_plans.payer_name || ' | ' || coalesce(payer_plans.plan_name, '')),
            rules.pattern
        )
    qualify row_number() over (
        partition by payer_plans.payer_name, payer_plans.plan_name
        order by rules.rule_priority
    ) = 1

)

select
    {{ surrogate_key(['payer_plans.payer_name', 'payer_plans.plan_name']) }} as payer_plan_key,
    payer_plans.payer_name,
    payer_plans.plan_name,
    coalesce(matches.payer_class, 'unknown')   as payer_class,
    matches.rule_priority                      as matched_rule_priority,
    matches.pattern                            as matched_pattern
from payer_plans
left join matches
    on payer_plans.payer_name = matches.payer_name
    and payer_plans.plan_name is not distinct from matches.plan_name
