{#-
  The payer class dictionary: payer_class_id -> payer_class, as carried by int_price_facts and
  int_hospital_cell_stats (int_payer_map.payer_class_id, plus 0 = 'not_applicable' for rows
  without a payer). A view over the small int_payer_map; the marts join it onto their results.
-#}

select distinct payer_class_id, payer_class
from {{ ref('int_payer_map') }}
union all
select 0 as payer_class_id, 'not_applicable' as payer_class
