{{ hospital_incremental_config() }}
/* depends_on: {{ ref('int_hospital_fingerprints') }} (read by the incremental macros) */

{#-
  The cells that the distribution, index and trend marts share: per file version x distribution
  cell (int_price_cells.cell_id: primary_code x primary_code_type x setting x charge_kind) x
  payer class (payer_class_id of int_payer_classes, 0 = 'not_applicable' for item-level rows),
  the hospital's own median, extremes and row count. Numeric charge kinds only
  (negotiated_algorithm and count are text); rows without a primary_code are not comparable and
  left out (int_price_cells.is_distribution_cell).

  Read from the lake, not from int_price_facts: the only columns it needs are the key strings
  (resolved to integer ids by hash joins against the small int_price_keys and int_price_cells
  dictionaries, as int_price_facts does) and the value, so the main mart's chain
  (groups, cells, this, mart_price_distribution) never writes the 50 M-row facts table. The
  aggregate groups on integers only, and only the key and the statistics are stored (hospital
  and current flag are one join away in int_price_versions): at 50 M prices this table has
  ~18 M rows and writing it is a large part of its cost.

  Incremental by hospital (macros/incremental_by_hospital.sql): hospital_id and the hospital's
  fingerprint (int_hospital_fingerprints) are stored on each row; an incremental build reads
  only the changed hospitals' files and deletes the rows of changed or gone hospitals.
-#}

with facts as (

    select
        price_keys.version_id,
        price_keys.hospital_id,
        cells.cell_id,
        price_keys.payer_class_id,
        {{ price_value('history') }}             as value
    from {{ ref('stg_prices_history') }} as history
    {{ join_price_dictionaries('history') }}
    where cells.is_distribution_cell
        and {{ hospital_filter('history.hospital_key') }}

)

select
    stats.*,
    fingerprints.fingerprint
from (
    select
        version_id,
        hospital_id,
        cell_id,
        payer_class_id,
        count(*)            as n_prices,
        median(value)       as hospital_median,
        min(value)          as min_value,
        max(value)          as max_value
    from facts
    where value is not null
    group by version_id, hospital_id, cell_id, payer_class_id
) as stats
inner join {{ ref('int_hospital_fingerprints') }} as fingerprints
    on stats.hospital_id = fingerprints.hospital_id
