{#-
  The prices of each hospital's current file versions only: the versions the prices asset lists
  as current (the files the hospital publishes today, usually one), without hospitals the catalog
  marks 'removed'. Same columns as stg_prices. A view.
-#}

select {{ star_exclude(['version_seq', 'is_current']) }}
from {{ ref('int_prices') }}
where is_current
