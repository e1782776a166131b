{#- One row per catalogued hospital, cleaned. Small: a view over the catalog Parquet file. -#}

with source as (

    select * from {{ source('lake', 'hospitals') }}

)

select
    {{ clean_text('hospital_key') }}        as hospital_key,
    {{ clean_code('ccn') }}                 as ccn,
    {{ clean_text('name') }}                as hospital_name,
    {{ clean_text('address') }}             as address,
    {{ clean_text('city') }}                as city,
    {{ clean_code('state') }}               as state,
    {{ clean_text('zip') }}                 as zip,
    {{ clean_text('website') }}             as website,
    {{ clean_enum('status') }}              as status,
    {{ clean_enum('status') }} = 'active'   as is_active
from source
-- The catalog is one row per hospital; if it ever is not, keep one deterministic row so the
-- key stays unique (the unique test on the source-side duplicates is in schema.yml).
qualify row_number() over (
    partition by {{ clean_text('hospital_key') }}
    order by ({{ clean_enum('status') }} = 'active') desc, {{ clean_text('name') }}{{ nulls_last() }}
) = 1
