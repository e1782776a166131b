-- int_prices_current must hold exactly one file version per hospital.
select hospital_key, count(distinct file_sha256) as n_versions
from {{ ref('int_prices_current') }}
group by hospital_key
having count(distinct file_sha256) > 1
