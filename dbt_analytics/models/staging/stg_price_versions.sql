{#- One row per file version of a hospital ever normalised (the prices asset's version list). -#}

select
    {{ clean_text('hospital_key') }}                as hospital_key,
    lower({{ clean_text('file_sha256') }})          as file_sha256,
    cast(version_seq as integer)                    as version_seq,
    {{ clean_text('url') }}                         as url,
    cast(last_updated_on as date)                   as last_updated_on,
    {{ clean_text('template_version') }}            as template_version,
    cast({{ adapter.quote('rows') }} as bigint)                          as n_rows,
    coalesce(cast(is_current as boolean), false)    as is_current,
    cast(first_seen_at as {{ timestamp_tz_type() }})              as first_seen_at,
    cast(last_seen_at as {{ timestamp_tz_type() }})               as last_seen_at,
    cast(superseded_at as {{ timestamp_tz_type() }})              as superseded_at
from {{ source('history', 'price_versions') }}
