{#-
  One row per catalogued hospital: is what it publishes CMS-conformant? Conformance comes from
  the hospital's latest conformance_reports run (one row per listed file); freshness and template
  version of the current file from mart_hospital_summary. The current file is the one behind the
  hospital's prices; a hospital without prices (e.g. its only file has a header and no data rows)
  is judged by the files it lists, so current_file_valid is false rather than NULL when they fail.
-#}

with reports as (

    select * from {{ ref('stg_compliance_reports') }}

),

rules as (

    select
        reports.hospital_key,
        rule_count.rule,
        rule_count.severity,
        sum(rule_count.count) as n
    from reports, {{ lateral_unnest('reports.rule_counts', 't', 'rule_count') }}
    group by all

),

top_rules as (

    select
        hospital_key,
        {{ string_agg_ordered("rule || ':' || n", "', '", 'n desc, rule') }} filter (where rule_rank <= 3) as top_rules,
        {{ string_agg_ordered('rule', "', '", 'rule') }} filter (where severity = 'error')          as error_rules
    from (
        select *, row_number() over (partition by hospital_key order by n desc, rule) as rule_rank
        from rules
    )
    group by hospital_key

),

per_hospital as (

    select
        hospital_key,
        count(*)                                                   as n_files_listed,
        count(*) filter (where download_status = 'ok')             as n_files_downloaded,
        count(*) filter (where is_valid is not null)               as n_files_checked,
        count(*) filter (where is_valid)                           as n_files_valid,
        coalesce(sum(n_errors), 0)                                 as n_errors,
        coalesce(sum(n_alerts), 0)                                 as n_alerts,
        {{ string_agg_ordered('declared_version', "', '", 'declared_version', distinct=true) }} as declared_versions,
        {{ string_agg_ordered('rules_version', "', '", 'rules_version', distinct=true) }}       as rules_versions,
        {{ string_agg_ordered('rules_selection', "', '", 'rules_selection', distinct=true) }}   as rules_selections,
        bool_and(is_valid) filter (where is_valid is not null)     as checked_files_valid,
        max(validated_at)                                          as validated_at
    from reports
    group by hospital_key

),

code_quality as (

    -- Codes of the current items that lack their system's shape (mart_item_codes.is_well_formed):
    -- an eight-digit "HCPCS" code, a ten-digit NDC, ... counted per hospital.
    select
        hospital_key,
        count(*)                                                   as n_item_codes,
        count(*) filter (where not is_well_formed)                 as n_malformed_codes,
        count(*) filter (where not is_well_formed and is_primary)  as n_malformed_primary_codes
    from {{ ref('mart_item_codes') }}
    group by hospital_key

),

summary as (

    select hospital_key, file_sha256, last_updated_on, template_version
    from {{ ref('mart_hospital_summary') }}

)

select
    hospitals.hospital_key,
    hospitals.hospital_name,
    hospitals.state,
    hospitals.is_active,
    per_hospital.hospital_key is not null                                  as has_report,
    coalesce(per_hospital.n_files_listed, 0)                               as n_files_listed,
    coalesce(per_hospital.n_files_checked, 0)                              as n_files_checked,
    coalesce(per_hospital.n_files_valid, 0)                                as n_files_valid,
    per_hospital.n_files_listed > 0
        and per_hospital.n_files_valid = per_hospital.n_files_listed       as all_files_valid,
    summary.file_sha256                                                    as current_file_sha256,
    case
        when summary.file_sha256 is not null then current_report.is_valid
        else per_hospital.checked_files_valid
    end                                                                    as current_file_valid,
    current_report.rules_version                                           as current_file_rules_version,
    coalesce(per_hospital.n_errors, 0)                                     as n_errors,
    coalesce(per_hospital.n_alerts, 0)                                     as n_alerts,
    coalesce(code_quality.n_item_codes, 0)                                 as n_item_codes,
    coalesce(code_quality.n_malformed_codes, 0)                            as n_malformed_codes,
    coalesce(code_quality.n_malformed_primary_codes, 0)                    as n_malformed_primary_codes,
    top_rules.top_rules,
    top_rules.error_rules,
    summary.last_updated_on,
    summary.template_version,
    per_hospital.declared_versions,
    per_hospital.rules_versions,
    per_hospital.rules_selections,
    per_hospital.validated_at,
    case
        when per_hospital.hospital_key is null then 'not_checked'
        when per_hospital.n_files_checked = 0 then 'no_file'
        when per_hospital.n_files_valid < per_hospital.n_files_listed then 'non_conformant'
        when per_hospital.n_alerts > 0 then 'conformant_with_alerts'
        else 'conformant'
    end                                                                    as compliance_status
from {{ ref('stg_hospitals') }} as hospitals
left join per_hospital
    on hospitals.hospital_key = per_hospital.hospital_key
left join top_rules
    on hospitals.hospital_key = top_rules.hospital_key
left join summary
    on hospitals.hospital_key = summary.hospital_key
left join code_quality
    on hospitals.hospital_key = code_quality.hospital_key
left join (
    select
        hospital_key,
        file_sha256,
        bool_and(is_valid) as is_valid,
        {{ string_agg_ordered('rules_version', "', '", 'rules_version', distinct=true) }} as rules_version
    from reports
    where file_sha256 is not null
    group by all
) as current_report
    on current_report.hospital_key = summary.hospital_key
    and current_report.file_sha256 = summary.file_sha256
