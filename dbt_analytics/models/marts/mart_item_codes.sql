{#-
  The codes bridge: every (cleaned) code published for each item of the current file versions,
  so an item can be found by any of its codes, not only its primary code. Grain: item_key x
  code_type x code. is_primary marks the item's primary code; code_system is the harmonised
  system of the code (pp_code_system: by shape, CPT vs HCPCS Level II, DRG families);
  is_well_formed says whether the cleaned code has the shape of its code system (CPT/HCPCS five
  characters, MS-DRG three digits, RC four digits, NDC eleven digits; other systems have no
  fixed shape).

  Cost: `codes` is a list column, and decoding it on every price row is the most expensive read
  of the lake. An item's codes are the same on each of its rows (the normaliser writes the
  item's code list on each charge of the item), so they are read from the rows without a payer
  (gross, discounted cash, min, max: a few per item, which the Parquet reader picks by the
  pushed-down `payer_name is null` filter on the raw files) and, only for hospitals where some
  current item has no such row (int_current_items) or a payer is blank, from all of that
  hospital's current rows.
-#}

{#- Built per hospital in int_hospital_item_codes (incremental by hospital); copied here without
    its bookkeeping columns. -#}
select {{ star_exclude(['hospital_id', 'fingerprint']) }}
from {{ ref('int_hospital_item_codes') }}
