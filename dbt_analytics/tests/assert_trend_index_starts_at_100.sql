-- mart_price_trends: every hospital's first version has index 100 and no previous version.
select hospital_key, file_sha256, price_index_vs_first, previous_file_sha256
from {{ ref('mart_price_trends') }}
where version_seq = 1
    and (abs(price_index_vs_first - 100) > 1e-9 or previous_file_sha256 is not null)
