{{ config(materialized='table') }}

{#-
  The cell dictionary: one row per distinct as-published (primary_code, primary_code_type,
  setting, charge_kind, drug_type_of_measurement) of the price history's known file versions,
  cleaned and harmonised once per distinct value instead of once per price row, with 64-bit ids
  of the result:

    primary_code      the code cleaned by its type (pp_clean_code of price_pipeline.lib.prices.codes,
                      the normaliser's own cleaning, re-applied so lakes written before a
                      cleaning rule existed are cleaned too: NDC suffixes, DRG labels);
    primary_code_type the harmonised code system (pp_code_system): decided by the code's shape,
                      so a five-digit code is CPT whether the hospital labelled it CPT or HCPCS,
                      a letter + four digits is HCPCS Level II, DRG / CMS-DRG labels are MS-DRG;
    published_code_type  the type as published (cleaned), kept beside it;
    drug_unit_type    the drug's unit type (drug_type_of_measurement, upper-cased) for dollar
                      kinds: such cells compare prices per unit (the amount divided by the
                      row's drug_unit_of_measurement, macro price_value), so drugs sold in
                      different package sizes are compared like with like;
    cell_id           the cleaned (primary_code, primary_code_type, setting, charge_kind,
                      drug_unit_type): the distribution cell without the payer class; every raw
                      spelling of one cell shares it;
    code_setting_id   the cleaned (primary_code, primary_code_type, setting), part of the item
                      identity hashed into int_price_facts.item_id;
    code_id           the cleaned (primary_code, primary_code_type) (NULL when there is no
                      code), for distinct code counts.

  Built from the per-hospital spellings of int_hospital_raw_cells (a narrow read of five
  dictionary-encoded columns, incremental by hospital) with a few tens of thousands of result
  rows; only spellings of file versions the version list knows count (as in int_price_groups).
  The row-level models join each price row to it on the raw strings and keep cell_id, so every
  aggregate downstream groups on integers and joins these strings back onto its small result.
  Ids are hashes of the cleaned strings, the same in every build.
-#}

with raw_cells as (

    -- The spellings of every hospital's known file versions, collected per hospital by the
    -- incremental int_hospital_raw_cells: an incremental build reads only the changed
    -- hospitals' files, and a spelling no hospital publishes any more is gone, as in a full build.
    select distinct
        raw_primary_code,
        raw_primary_code_type,
        raw_setting,
        raw_charge_kind,
        raw_drug_type
    from {{ ref('int_hospital_raw_cells') }}

),

cleaned as (

    select
        *,
        {{ clean_price_column('primary_code_type', 'raw_primary_code_type') }} as published_code_type,
        pp_clean_code(
            {{ clean_price_column('primary_code', 'raw_primary_code') }},
            {{ clean_price_column('primary_code_type', 'raw_primary_code_type') }}
        )                                                                      as clean_primary_code,
        {{ clean_price_column('setting', 'raw_setting') }}                     as setting,
        {{ clean_price_column('charge_kind', 'raw_charge_kind') }}             as charge_kind
    from raw_cells

),

harmonised as (

    select
        *,
        clean_primary_code                                             as primary_code,
        pp_code_system(clean_primary_code, pp_clean_code_type(published_code_type)) as primary_code_type,
        case when charge_kind in {{ sql_list(dollar_charge_kinds()) }}
            then {{ clean_price_column('drug_type_of_measurement', 'raw_drug_type') }} end as drug_unit_type
    from cleaned

)

select
    -- Hashes of the cleaned strings: the same ids in every build, so per-hospital rows kept by an
    -- incremental build (macros/incremental_by_hospital.sql) join to this build's dictionary.
    {{ hash_id(['primary_code', 'primary_code_type', 'setting', 'charge_kind', 'drug_unit_type']) }} as cell_id,
    {{ hash_id(['primary_code', 'primary_code_type', 'setting']) }}                    as code_setting_id,
    case when primary_code is not null then {{ hash_id(['primary_code', 'primary_code_type']) }} end as code_id,
    raw_primary_code,
    raw_primary_code_type,
    raw_setting,
    raw_charge_kind,
    raw_drug_type,
    primary_code,
    primary_code_type,
    published_code_type,
    setting,
    charge_kind,
    drug_unit_type,
    drug_unit_type is not null                                        as is_per_unit,
    pp_code_well_formed(primary_code, pp_clean_code_type(published_code_type)) as is_well_formed,
    primary_code is not null and charge_kind in {{ sql_list(numeric_charge_kinds()) }} as is_distribution_cell
from harmonised
