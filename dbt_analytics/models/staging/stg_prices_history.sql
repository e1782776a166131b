{#-
  The price history source (history.prices_history) as published: every row of every file
  version kept in the lake, the columns of PRICES_SCHEMA named and nothing cleaned. The only
  model that reads the source; a view, so the Parquet files are read (with the models' filters
  and column choices pushed down to them) only by the models that select from it.

  Uncleaned on purpose: the models that read it row by row join each row to small dictionaries
  on the raw strings (macros/price_dictionaries.sql), and the narrow reads clean each distinct
  value once with the staging rules of macros/price_columns.sql, which stg_prices applies to
  every row.
-#}

select
    hospital_key,
    file_sha256,
    source_row,
    source_path,
    hospital_name,
    last_updated_on,
    template_version,
    description,
    setting,
    billing_class,
    modifiers,
    drug_unit_of_measurement,
    drug_type_of_measurement,
    primary_code,
    primary_code_type,
    codes,
    payer_name,
    plan_name,
    charge_kind,
    amount,
    percentage,
    value_text,
    methodology,
    additional_payer_notes,
    additional_generic_notes
from {{ source('history', 'prices_history') }}
