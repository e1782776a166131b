{#-
  The codes bridge: every (cleaned) code published for each item of the current file versions,
  so an item can be found by any of its codes, not only its primary code. Grain: item_key x
  code_type x code. is_primary marks the item's primary code; code_system is the harmonised
  system of the code (pp_code_system: by shape, CPT vs HCPCS Level II, DRG families);
  is_well_formed says whether the cleaned code has the shape of its code system (CPT/HCPCS five
  characters, MS-DRG three digits, RC four digits, NDC eleven digits; other systems have no
  fixed shape).

  Computed per hospital in int_hospital_item_codes (incremental by hospital; how the lake is
  read is described there); copied here without its bookkeeping columns.
-#}

select {{ star_exclude(['hospital_id', 'fingerprint']) }}
from {{ ref('int_hospital_item_codes') }}
