{{ config(materialized='table') }}

{#-
  The cells that the distribution, index and trend marts share: per file version x distribution
  cell (int_price_cells.cell_id: primary_code x primary_code_type x setting x charge_kind) x
  payer class (int_payer_map.payer_class_id, 0 = 'not_applicable' for item-level rows), the
  hospital's own median, extremes and row count. One aggregate over int_price_facts on integer
  keys only; the marts join the strings back onto their (much smaller) results. Numeric charge
  kinds only (negotiated_algorithm and count are text); rows without a primary_code are not
  comparable and left out (int_price_cells.is_distribution_cell). Only the key and the
  statistics are stored (hospital and current flag are one join away in int_price_versions):
  at 50 M prices this table has ~18 M rows and writing it is a large part of its cost.
-#}

select
    facts.version_id,
    facts.cell_id,
    facts.payer_class_id,
    count(*)                        as n_prices,
    median(facts.value)             as hospital_median,
    min(facts.value)                as min_value,
    max(facts.value)                as max_value
from {{ ref('int_price_facts') }} as facts
where facts.cell_id in (select cell_id from {{ ref('int_price_cells') }} where is_distribution_cell)
    and facts.value is not null
group by facts.version_id, facts.cell_id, facts.payer_class_id
