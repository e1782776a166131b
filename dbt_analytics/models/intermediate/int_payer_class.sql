{#-
  Payer class of every raw payer_name x plan_name (a view over int_payer_map, kept for readers
  of the earlier rule-only model): the seed mapping's class when it gives one, else the first
  payer_class_rules match, else 'unknown'.
-#}

select
    payer_plan_key,
    payer_name,
    plan_name,
    payer_class,
    matched_rule_priority,
    matched_pattern
from {{ ref('int_payer_map') }}
