{#-
  Every price fact of every kept file version with its version attributes (version_seq,
  is_current). A view over stg_prices: the marts aggregate it in one pass each.
-#}

select
    prices.*,
    versions.version_seq,
    versions.is_current
from {{ ref('stg_prices') }} as prices
inner join {{ ref('int_price_versions') }} as versions
    on prices.hospital_key = versions.hospital_key
    and prices.file_sha256 = versions.file_sha256
