{#-
  The key dictionary of the row-level reads: one row per as-published (hospital_key,
  file_sha256, payer_name, plan_name) of a known file version, with the integer ids the
  aggregates group on (version_id, hospital_id, is_current from int_price_versions via
  int_price_groups; payer_pair_id and payer_class_id from int_payer_map, payer class 0 =
  'not_applicable' for rows without a payer). Unique on the raw strings because the cleaned
  values are functions of the raw ones. A view over two small tables; int_price_facts and
  int_hospital_cell_stats join every price row to it on the raw strings.
-#}

select distinct
    groups.raw_hospital_key,
    groups.raw_file_sha256,
    groups.raw_payer_name,
    groups.raw_plan_name,
    groups.version_id,
    groups.hospital_id,
    groups.is_current,
    payer_map.payer_pair_id,
    coalesce(payer_map.payer_class_id, 0)   as payer_class_id
from {{ ref('int_price_groups') }} as groups
left join {{ ref('int_payer_map') }} as payer_map
    on groups.payer_name = payer_map.payer_name
    and groups.plan_name is not distinct from payer_map.plan_name
