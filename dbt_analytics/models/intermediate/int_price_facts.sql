{{ hospital_incremental_config() }}
/* depends_on: {{ ref('int_hospital_fingerprints') }} (read by the incremental macros) */

{#-
  The row-level table of the current prices that int_current_items and mart_payer_comparison
  aggregate: each price fact of the current file versions (the rows of int_prices_current),
  narrowed to what those aggregate and keyed by integers only:

    version_id / hospital_id / is_current  from int_price_versions,
    payer_pair_id                          from int_payer_map (NULL for rows without a payer),
    payer_class_id                         int_payer_map.payer_class_id, 0 for rows without a
                                           payer (payer class 'not_applicable'),
    cell_id                                from int_price_cells: the cleaned primary_code,
                                           primary_code_type, setting and charge_kind,
    item_id                                64-bit hash of the item identity (below),

  plus the numeric value (percentage for negotiated_percentage, else amount). Every string is
  resolved by a hash join on the as-published strings against a small dictionary
  (int_price_keys for hospital, file, payer and plan; int_price_cells for the cell columns),
  so per row there is no string cleaning, no regex and no md5; the marts join the cleaned
  strings back onto their small results.

  item_id: the hospital, the cleaned primary code, code type and setting (code_setting_id),
  every published code of the item (the `codes` list, secondary NDC and CDM codes included:
  two drugs that differ only in NDC are two items) and the as-published description, billing
  class, modifiers and drug unit and type. Those last
  columns are hashed as published, not trimmed and case-folded like stg_prices.item_key: it is
  the normaliser's own item identity (price_pipeline.lib.prices.normalize groups an item's rows on the
  as-published values, and every row of an item carries them identically), and cleaning them
  on every row was the most expensive part of this model. Two rows differing only in padding or
  case of those columns would count as two items here; on the benchmark lake every mart is the
  same either way.

  Incremental by hospital (macros/incremental_by_hospital.sql): the hospital's fingerprint
  (int_hospital_fingerprints) is stored on each row; an incremental build reads only the changed
  hospitals' files and deletes the rows of changed or gone hospitals.
-#}

with history as (

    select * from {{ ref('stg_prices_history') }}
    where {{ hospital_filter('hospital_key', current_only=true) }}

)

select
    price_keys.version_id,
    price_keys.hospital_id,
    price_keys.is_current,
    price_keys.payer_pair_id,
    price_keys.payer_class_id,
    cells.cell_id,
    {{ hash_id([
        'price_keys.hospital_id',
        'cells.code_setting_id',
        'history.codes',
        'history.description',
        'history.billing_class',
        'history.modifiers',
        'history.drug_unit_of_measurement',
        'history.drug_type_of_measurement'
    ]) }}                                                        as item_id,
    {{ price_value('history') }}                             as value,
    fingerprints.fingerprint
from history
{{ join_price_dictionaries('history') }}
inner join {{ ref('int_hospital_fingerprints') }} as fingerprints
    on price_keys.hospital_id = fingerprints.hospital_id
-- Only the current versions: the aggregates over all versions (int_hospital_cell_stats) read
-- the lake themselves.
where price_keys.is_current
