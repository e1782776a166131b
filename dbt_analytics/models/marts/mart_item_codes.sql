{#-
  The codes bridge: every (cleaned) code published for each item of the current file versions,
  so an item can be found by any of its codes, not only its primary code. Grain: item_key x
  code_type x code. is_primary marks the item's primary code; code_system is the harmonised
  system of the code (pp_code_system: by shape, CPT vs HCPCS Level II, DRG families);
  is_well_formed says whether the cleaned code has the shape of its code system (CPT/HCPCS five
  characters, MS-DRG three digits, RC four digits, NDC eleven digits; other systems have no
  fixed shape).

  Computed per hospital in int_hospital_item_codes (incremental by hospital; how the lake is
  read is described there); this mart is that table without its bookkeeping columns, so it is a
  view: a table copy cost 1-1.8 s of every build at 20 M prices, incremental ones included
  (rewriting every hospital's rows for the 1 % that changed), for rows identical to its source's.
  Readers (exports, the published marts, analysts) read the same rows through the view.
-#}
{{ config(materialized='view') }}

select {{ star_exclude(['hospital_id', 'fingerprint']) }}
from {{ ref('int_hospital_item_codes') }}
