{{ config(materialized='table') }}

{#-
  One row per hospital with a file version in the version list: a 64-bit fingerprint of what its
  per-hospital rows are computed from at the file level: each version's file_sha256, version_seq
  and current flag (is_current turns false when the catalog removes the hospital), and the
  version files present in the lake (a listing, no file is read). The per-hospital incremental
  models built only from the files (int_price_groups) store it on their rows and recompute a
  hospital when it changes (macros/incremental_by_hospital.sql). A hospital whose versions are
  gone has no row here, so its rows are deleted.
-#}

{%- set lake = env_var('PRICE_PIPELINE_LAKE_URL', '../.data/lake').rstrip('/') %}

with lake_files as (

    -- The history files as listed (hospital partition, file sha): a version whose file is missing
    -- contributes nothing to a full build, so it must change the fingerprint too.
    select
        {{ regexp_extract_group('file', 'hospital_key=([^/]+)/file_sha256=([^/]+)\.parquet$', 1) }} as hospital_key,
        lower({{ regexp_extract_group('file', 'hospital_key=([^/]+)/file_sha256=([^/]+)\.parquet$', 2) }}) as file_sha256
    from {{ lake_files(lake ~ '/prices_history/*/file_sha256=*.parquet') }}

)

select
    versions.hospital_id,
    versions.hospital_key,
    {{ hash_id([string_agg_ordered(
        "concat_ws(':', versions.file_sha256, versions.version_seq, versions.is_current, lake_files.file_sha256 is not null)",
        "','", 'versions.file_sha256, versions.version_seq')]) }}                                                                  as fingerprint,
    bool_or(versions.is_current)                                        as has_current_version
from {{ ref('int_price_versions') }} as versions
left join lake_files
    on versions.hospital_key = lake_files.hospital_key
    and versions.file_sha256 = lake_files.file_sha256
group by versions.hospital_id, versions.hospital_key
