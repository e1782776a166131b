{#-
  Payer class of every raw payer_name x plan_name (a view over int_payer_map, kept for readers
  of the earlier rule-only model): the class and the rule of price_pipeline.lib.prices.payers (or
  'seed') that decided it.
-#}

select
    payer_plan_key,
    payer_name,
    plan_name,
    payer_class,
    payer_class_source,
    payer_class_rule
from {{ ref('int_payer_map') }}
