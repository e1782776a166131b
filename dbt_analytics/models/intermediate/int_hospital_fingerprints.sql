{{ config(materialized='table') }}

{#-
  One row per hospital with a file version: the fingerprint of int_hospital_version_fingerprints
  combined with the payer class of each of the hospital's payer pairs (int_price_groups x
  int_payer_map). The per-hospital incremental models that group or key on payer classes
  (int_hospital_cell_stats, int_price_facts and what is built from it) store it on their rows,
  so a seed or rule change that reclassifies a pair recomputes exactly the hospitals that
  publish it (macros/incremental_by_hospital.sql).
-#}

with pairs as (

    select distinct
        groups.hospital_id,
        payer_map.payer_pair_id,
        payer_map.payer_class_id
    from {{ ref('int_price_groups') }} as groups
    inner join {{ ref('int_payer_map') }} as payer_map
        on groups.payer_name = payer_map.payer_name
        and groups.plan_name is not distinct from payer_map.plan_name

),

pair_fingerprints as (

    select
        hospital_id,
        {{ hash_id([string_agg_ordered("concat_ws(':', payer_pair_id, payer_class_id)", "','", 'payer_pair_id')]) }} as pairs_fingerprint
    from pairs
    group by hospital_id

)

select
    files.hospital_id,
    files.hospital_key,
    {{ hash_id(['files.fingerprint', 'pair_fingerprints.pairs_fingerprint']) }} as fingerprint,
    files.has_current_version
from {{ ref('int_hospital_version_fingerprints') }} as files
left join pair_fingerprints
    on files.hospital_id = pair_fingerprints.hospital_id
