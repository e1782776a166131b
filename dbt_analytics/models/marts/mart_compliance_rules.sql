{#-
  Which CMS rules hospitals break most: one row per rule x severity over the latest conformance
  report of every hospital's listed files.
-#}

with reports as (

    select * from {{ ref('stg_compliance_reports') }}

)

select
    rule_count.rule                                 as rule,
    rule_count.severity                             as severity,
    count(distinct reports.hospital_key)            as n_hospitals,
    count(distinct reports.file_sha256)             as n_files,
    sum(rule_count.count)                           as n_findings
from reports, {{ lateral_unnest('reports.rule_counts', 't', 'rule_count') }}
group by all
