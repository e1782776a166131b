{{ config(materialized='table') }}

{#-
  Every file version of every hospital with its place in the hospital's history: previous
  version (by version_seq), whether the hospital is still in the catalog, and whether the
  version counts as current (the prices asset lists it as current and the hospital is not
  removed). Small: one row per version.
-#}

with versions as (

    select * from {{ ref('stg_price_versions') }}

),

removed as (

    select hospital_key from {{ ref('stg_hospitals') }} where status = 'removed'

)

select
    -- 64-bit keys for the row-level tables (joins and group-bys on integers instead of
    -- 64-character strings). Hashes of the key strings, so they are the same in every build:
    -- the per-hospital incremental tables keep rows from earlier builds (macros/incremental_by_hospital.sql).
    {{ hash_id(['versions.hospital_key', 'versions.file_sha256']) }}             as version_id,
    {{ hash_id(['versions.hospital_key']) }}                                   as hospital_id,
    versions.hospital_key,
    versions.file_sha256,
    versions.version_seq,
    lag(versions.file_sha256) over (
        partition by versions.hospital_key order by versions.version_seq
    )                                                             as previous_file_sha256,
    versions.url,
    versions.last_updated_on,
    versions.template_version,
    versions.n_rows,
    versions.is_current                                           as is_listed,
    removed.hospital_key is not null                              as hospital_removed,
    versions.is_current and removed.hospital_key is null          as is_current,
    versions.first_seen_at,
    versions.last_seen_at,
    versions.superseded_at
from versions
left join removed
    on versions.hospital_key = removed.hospital_key
