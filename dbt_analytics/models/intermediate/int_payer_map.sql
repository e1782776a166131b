{{ config(materialized='table') }}

{#-
  Canonical payer, plan, product and payer class of every raw payer_name x plan_name in the
  price history, with how each was decided and how sure it is.

  The rules live in one place, price_pipeline.lib.prices.payers (text normalisation, product-type words
  before brands, the payer_brands seed as brand table), called here through the Python UDF
  pp_payer_classify that the dbt-duckdb plugin price_pipeline.lib.analytics.dbt_plugin registers, once per
  distinct pair. The reviewers' seed payer_plan_map overrides them:

    payer_canonical  seed exact (payer key + plan key) > seed payer row (plan_key '*') > rules;
    payer_class      seed exact > rules (unless they say 'unknown') > seed payer row > 'unknown'
                     (a payer-wide seed row never overrides a product word in the plan:
                     "Medicare" + "Medicare Advantage HMO" stays Medicare Advantage);
    product          seed (exact, then payer row) > rules.

  mapping_method says where the canonical payer came from (seed_exact, seed_payer, rule) and is
  'unmapped' only when neither a canonical payer nor a class was found, so a rule-decided class
  never sits beside 'unmapped'. Also counts how often each raw pair occurs (from
  int_price_groups, the review queue's frequencies).
-#}

-- depends_on: {{ ref('payer_brands') }}

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
        {{ payer_text_key('plan_name') }}     as plan_key,
        pp_payer_classify(payer_name, plan_name) as rules
    from pairs

),

seed as (

    select
        cast(mapping_version as {{ string_type() }})      as mapping_version,
        {{ payer_text_key('payer_key') }}     as payer_key,
        case when trim(plan_key) = '*' then '*' else {{ payer_text_key('plan_key') }} end as plan_key,
        {{ clean_text('payer_canonical') }}   as payer_canonical,
        {{ clean_text('plan_canonical') }}    as plan_canonical,
        {{ clean_text('product') }}           as product,
        {{ clean_enum('payer_class') }}       as payer_class,
        cast(confidence as double)            as confidence
    from {{ ref('payer_plan_map') }}

),

decided as (

    select
        {{ star_exclude(['rules'], 'keyed.') }},
        rules.normalized                      as normalized_text,
        rules.class_rule                      as payer_class_rule,
        case
            when exact.payer_canonical is not null then 'seed_exact'
            when payer_only.payer_canonical is not null then 'seed_payer'
            when rules.payer_canonical is not null or rules.payer_class <> 'unknown' then 'rule'
            else 'unmapped'
        end                                   as mapping_method,
        coalesce(exact.mapping_version, payer_only.mapping_version) as mapping_version,
        coalesce(exact.payer_canonical, payer_only.payer_canonical, rules.payer_canonical) as payer_canonical,
        coalesce(exact.plan_canonical, payer_only.plan_canonical,
                 nullif(trim({{ regexp_replace_all('keyed.plan_name', '\\s+', ' ') }}), '')) as plan_canonical,
        coalesce(exact.product, payer_only.product, rules.product) as product,
        coalesce(exact.payer_class, nullif(rules.payer_class, 'unknown'), payer_only.payer_class, 'unknown')
                                              as payer_class,
        case
            when exact.payer_class is not null then 'seed'
            when rules.payer_class <> 'unknown' then 'rule'
            when payer_only.payer_class is not null then 'seed'
            else 'none'
        end                                   as payer_class_source,
        case
            when exact.payer_canonical is not null then exact.confidence
            when payer_only.payer_canonical is not null then payer_only.confidence
            when rules.brand_source = 'program' then 0.9
            when rules.brand_source = 'payer' then 0.8
            when rules.brand_source = 'plan' then 0.7
            when rules.payer_class <> 'unknown' then 0.5
            else 0.0
        end                                   as mapping_confidence
    from keyed
    left join seed as exact
        on keyed.payer_key = exact.payer_key and keyed.plan_key = exact.plan_key
    left join seed as payer_only
        on keyed.payer_key = payer_only.payer_key and payer_only.plan_key = '*'

)

select
    -- 64-bit key of the pair used by the row-level int_price_facts; a hash of the strings, the
    -- same in every build (the per-hospital incremental tables keep rows of earlier builds).
    {{ hash_id(['payer_name', 'plan_name']) }}                 as payer_pair_id,
    -- 64-bit key of payer_class carried by int_price_facts, so the per-hospital cell aggregate
    -- groups on it; 0 is reserved there for rows without a payer.
    {{ hash_id(['payer_class']) }}                           as payer_class_id,
    {{ surrogate_key(['payer_name', 'plan_name']) }} as payer_plan_key,
    payer_name,
    plan_name,
    payer_key,
    plan_key,
    normalized_text,
    payer_canonical,
    plan_canonical,
    product,
    payer_class,
    payer_class_source,
    payer_class_rule,
    mapping_method,
    mapping_confidence,
    mapping_version,
    n_prices,
    n_current_prices,
    n_hospitals,
    first_published_on,
    last_published_on,
    example_hospital_key
from decided
