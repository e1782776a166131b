{#-
  The prices of each hospital's current file version only. The lake may hold several versions
  of a hospital (one file_sha256 each); the current one is the latest last_updated_on, ties
  broken by the larger file_sha256 so the choice is deterministic. Hospitals the catalog marks
  'removed' are dropped; hospitals missing from the catalog are kept (and reported by the
  relationships test). A view: the version pick is a small aggregate over stg_prices.
-#}

with file_versions as (

    select
        hospital_key,
        file_sha256,
        max(last_updated_on) as last_updated_on
    from {{ ref('stg_prices') }}
    group by hospital_key, file_sha256

),

current_versions as (

    select hospital_key, file_sha256
    from file_versions
    qualify row_number() over (
        partition by hospital_key
        order by last_updated_on desc nulls last, file_sha256 desc
    ) = 1

),

removed_hospitals as (

    select hospital_key
    from {{ ref('stg_hospitals') }}
    where status = 'removed'

)

select prices.*
from {{ ref('stg_prices') }} as prices
inner join current_versions
    on prices.hospital_key = current_versions.hospital_key
    and prices.file_sha256 = current_versions.file_sha256
where not exists (
    select 1 from removed_hospitals where removed_hospitals.hospital_key = prices.hospital_key
)
