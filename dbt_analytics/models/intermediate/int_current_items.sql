{{ hospital_incremental_config() }}
/* depends_on: {{ ref('int_hospital_fingerprints') }} (read by the incremental macros) */

{#-
  One row per item of the current file versions (item_id, the item identity hash of
  int_price_facts, which includes the hospital): its primary code, its median gross charge
  and whether it has any item-level row. One aggregate over int_price_facts on integer keys
  (the primary code is part of the item identity, so one cell id per item names it) shared by
  mart_hospital_summary (item and code counts), mart_payer_comparison (negotiated vs gross of
  the same item) and mart_item_codes (which items have no item-level row).
-#}

with gross_cells as (

    select cell_id from {{ ref('int_price_cells') }} where charge_kind = 'gross'

),

items as (

    select
        facts.item_id,
        any_value(facts.hospital_id)                                     as hospital_id,
        any_value(facts.cell_id)                                         as cell_id,
        count(*)                                                         as n_prices,
        count(*) filter (where facts.payer_pair_id is null)              as n_item_level_prices,
        median(facts.value) filter (where gross_cells.cell_id is not null and facts.value is not null)
                                                                         as gross_amount
    from {{ ref('int_price_facts') }} as facts
    left join gross_cells
        on facts.cell_id = gross_cells.cell_id
    where facts.is_current
        and {{ hospital_id_filter('facts.hospital_id', current_only=true) }}
    group by facts.item_id

)

select
    items.item_id,
    items.hospital_id,
    cells.primary_code,
    cells.primary_code_type,
    items.n_prices,
    items.n_item_level_prices,
    items.gross_amount,
    fingerprints.fingerprint
from items
inner join {{ ref('int_hospital_fingerprints') }} as fingerprints
    on items.hospital_id = fingerprints.hospital_id
inner join (select distinct cell_id, primary_code, primary_code_type from {{ ref('int_price_cells') }}) as cells
    on items.cell_id = cells.cell_id
