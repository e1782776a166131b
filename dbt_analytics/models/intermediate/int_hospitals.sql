{#-
  One row per hospital with a file version in the version list: its integer hospital_id (the key
  of the per-hospital tables) and its hospital_key. The marts aggregate on hospital_id and join
  the key back through this model. A view over int_price_versions.
-#}

select distinct hospital_id, hospital_key
from {{ ref('int_price_versions') }}
