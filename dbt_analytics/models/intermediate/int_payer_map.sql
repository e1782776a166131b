{{ config(materialized='table') }}

{#-
  Canonical payer, plan, product and payer class of every raw payer_name x plan_name in the
  price history, with how it was decided and how sure it is. Precedence (first that applies):

    1. seed_exact  payer_plan_map row whose payer_key and plan_key equal the normalised raw
                   strings (payer_text_key);
    2. seed_payer  payer_plan_map row for the payer with plan_key '*' (any plan);
    3. rule        first payer_name_rules regex (lowest rule_priority) matching the payer key;
    4. unmapped    payer_canonical NULL, confidence 0 (listed by unmapped_payers).

  plan_canonical is the seed's when given, else the raw plan trimmed with inner whitespace
  collapsed. product is the seed's when given, else detected in the plan and payer text
  (product_from_text). payer_class is the seed's when given, else the first payer_class_rules
  match on lower("payer_name | plan_name"), else 'unknown'. Also counts how often each raw pair
  occurs (the review queue's frequencies, from int_price_groups). Regexes run once per distinct
  pair here, never per price row: int_price_facts carries payer_pair_id instead.
-#}

with pairs as (

    -- From the narrow int_price_groups pass (counts per file version x raw strings), so the
    -- mapping never reads the row-level prices.
    select
        payer_name,
        plan_name,
        cast(sum(n_rows) as bigint)                           as n_prices,
        cast(coalesce(sum(n_rows) filter (where is_current), 0) as bigint) as n_current_prices,
        count(distinct hospital_key)                          as n_hospitals,
        min(last_updated_on)                                  as first_published_on,
        max(last_updated_on)                                  as last_published_on,
        min(hospital_key)                                     as example_hospital_key
    from {{ ref('int_price_groups') }}
    where payer_name is not null
    group by payer_name, plan_name

),

keyed as (

    select
        *,
        {{ payer_text_key('payer_name') }}    as payer_key,
        {{ payer_text_key('plan_name') }}     as plan_key
    from pairs

),

seed as (

    select
        cast(mapping_version as varchar)      as mapping_version,
        {{ payer_text_key('payer_key') }}     as payer_key,
        case when trim(plan_key) = '*' then '*' else {{ payer_text_key('plan_key') }} end as plan_key,
        {{ clean_text('payer_canonical') }}   as payer_canonical,
        {{ clean_text('plan_canonical') }}    as plan_canonical,
        {{ clean_text('product') }}           as product,
        {{ clean_enum('payer_class') }}       as payer_class,
        cast(confidence as double)            as confidence
    from {{ ref('payer_plan_map') }}

),

name_rules as (

    select
        cast(rule_priority as integer)        as rule_priority,
        cast(pattern as varchar)              as pattern,
        cast(payer_canonical as varchar)      as payer_canonical,
        cast(confidence as double)            as confidence
    from {{ ref('payer_name_rules') }}

),

rule_match as (

    select keyed.payer_name, keyed.plan_name, name_rules.*
    from keyed
    inner join name_rules on regexp_matches(keyed.payer_key, name_rules.pattern)
    qualify row_number() over (
        partition by keyed.payer_name, keyed.plan_name order by name_rules.rule_priority
    ) = 1

),

class_rules as (

    select cast(rule_priority as integer) as rule_priority, cast(pattern as varchar) as pattern,
           cast(payer_class as varchar) as payer_class
    from {{ ref('payer_class_rules') }}

),

class_match as (

    select keyed.payer_name, keyed.plan_name, class_rules.*
    from keyed
    inner join class_rules
        on regexp_matches(lower(keyed.payer_name || ' | ' || coalesce(keyed.plan_name, '')), class_rules.pattern)
    qualify row_number() over (
        partition by keyed.payer_name, keyed.plan_name order by class_rules.rule_priority
    ) = 1

),

decided as (

    select
        keyed.*,
        exact.payer_canonical                 as exact_payer,
        payer_only.payer_canonical            as seed_payer,
        rule_match.payer_canonical            as rule_payer,
        case
            when exact.payer_key is not null then 'seed_exact'
            when payer_only.payer_key is not null then 'seed_payer'
            when rule_match.pattern is not null then 'rule'
            else 'unmapped'
        end                                   as mapping_method,
        coalesce(exact.mapping_version, payer_only.mapping_version) as mapping_version,
        coalesce(exact.payer_canonical, payer_only.payer_canonical, rule_match.payer_canonical) as payer_canonical,
        coalesce(exact.plan_canonical, payer_only.plan_canonical,
                 nullif(trim(regexp_replace(keyed.plan_name, '\s+', ' ', 'g')), '')) as plan_canonical,
        coalesce(exact.product, payer_only.product,
                 {{ product_from_text("coalesce(keyed.plan_key, '') || ' ' || coalesce(keyed.payer_key, '')") }}) as product,
        coalesce(exact.payer_class, payer_only.payer_class, class_match.payer_class, 'unknown') as payer_class,
        case
            when exact.payer_class is not null or payer_only.payer_class is not null then 'seed'
            when class_match.pattern is not null then 'rule'
            else 'none'
        end                                   as payer_class_source,
        class_match.rule_priority             as matched_rule_priority,
        class_match.pattern                   as matched_pattern,
        coalesce(exact.confidence, payer_only.confidence, rule_match.confidence, 0.0) as mapping_confidence
    from keyed
    left join seed as exact
        on keyed.payer_key = exact.payer_key and keyed.plan_key = exact.plan_key
    left join seed as payer_only
        on keyed.payer_key = payer_only.payer_key and payer_only.plan_key = '*'
    left join rule_match
        on keyed.payer_name = rule_match.payer_name
        and keyed.plan_name is not distinct from rule_match.plan_name
    left join class_match
        on keyed.payer_name = class_match.payer_name
        and keyed.plan_name is not distinct from class_match.plan_name

)

select
    -- Integer key of the pair used by the row-level int_price_facts (only stable within a build).
    cast(row_number() over (order by payer_name, plan_name nulls first) as integer) as payer_pair_id,
    -- Integer key of payer_class (1..n by class name) carried by int_price_facts, so the
    -- per-hospital cell aggregate groups on it; 0 is reserved there for rows without a payer.
    cast(dense_rank() over (order by payer_class) as integer) as payer_class_id,
    {{ surrogate_key(['payer_name', 'plan_name']) }} as payer_plan_key,
    payer_name,
    plan_name,
    payer_key,
    plan_key,
    payer_canonical,
    plan_canonical,
    product,
    payer_class,
    payer_class_source,
    mapping_method,
    mapping_confidence,
    mapping_version,
    matched_rule_priority,
    matched_pattern,
    n_prices,
    n_current_prices,
    n_hospitals,
    first_published_on,
    last_published_on,
    example_hospital_key
from decided
