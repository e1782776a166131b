{#-
  SQL that differs between the engines, behind adapter.dispatch (docs/analytics.md, "Spark").
  Each default__ renders exactly the DuckDB SQL the models had before (the DuckDB warehouse is
  unchanged, byte for byte); each spark__ renders Spark SQL (4.x, ANSI off as dbt-spark sets it)
  with the same result. Regex patterns are passed as Python strings and quoted per engine:
  Spark's string literals treat a backslash as an escape, DuckDB's do not, and Java regexes
  have no POSIX classes ([[:space:]] -> \s, the same characters).
-#}

{#- The text type of casts. -#}
{% macro string_type() %}{{ return(adapter.dispatch('string_type')()) }}{% endmacro %}
{% macro default__string_type() %}{{ return('varchar') }}{% endmacro %}
{% macro spark__string_type() %}{{ return('string') }}{% endmacro %}

{#- The type of an instant (timestamp with time zone; Spark's timestamp is one, shown in the session zone, UTC). -#}
{% macro timestamp_tz_type() %}{{ return(adapter.dispatch('timestamp_tz_type')()) }}{% endmacro %}
{% macro default__timestamp_tz_type() %}{{ return('timestamptz') }}{% endmacro %}
{% macro spark__timestamp_tz_type() %}{{ return('timestamp') }}{% endmacro %}

{#- trim(expression, characters): every leading and trailing character of the set removed. -#}
{% macro trim_chars(expression, characters) %}{{ return(adapter.dispatch('trim_chars')(expression, characters)) }}{% endmacro %}
{% macro default__trim_chars(expression, characters) %}{{ return('trim(' ~ expression ~ ', ' ~ characters ~ ')') }}{% endmacro %}
{% macro spark__trim_chars(expression, characters) %}{{ return('trim(BOTH ' ~ characters ~ ' FROM ' ~ expression ~ ')') }}{% endmacro %}

{#- A regex as a string literal of the engine. -#}
{% macro regex_literal(pattern) %}{{ return(adapter.dispatch('regex_literal')(pattern)) }}{% endmacro %}
{% macro default__regex_literal(pattern) %}{{ return("'" ~ pattern ~ "'") }}{% endmacro %}
{% macro spark__regex_literal(pattern) %}
    {%- set java = pattern.replace('[:space:]', '\\s') -%}
    {{ return("'" ~ java.replace('\\', '\\\\').replace("'", "\\'") ~ "'") }}
{% endmacro %}

{#- Every match of pattern replaced (DuckDB's 'g' option; Spark always replaces every match). -#}
{% macro regexp_replace_all(expression, pattern, replacement) %}{{ return(adapter.dispatch('regexp_replace_all')(expression, pattern, replacement)) }}{% endmacro %}
{% macro default__regexp_replace_all(expression, pattern, replacement) %}
    {{ return("regexp_replace(" ~ expression ~ ", " ~ regex_literal(pattern) ~ ", '" ~ replacement ~ "', 'g')") }}
{% endmacro %}
{% macro spark__regexp_replace_all(expression, pattern, replacement) %}
    {{ return("regexp_replace(" ~ expression ~ ", " ~ regex_literal(pattern) ~ ", '" ~ replacement ~ "')") }}
{% endmacro %}

{#- The whole text matches pattern. -#}
{% macro regexp_full_match(expression, pattern) %}{{ return(adapter.dispatch('regexp_full_match')(expression, pattern)) }}{% endmacro %}
{% macro default__regexp_full_match(expression, pattern) %}{{ return("regexp_full_match(" ~ expression ~ ", " ~ regex_literal(pattern) ~ ")") }}{% endmacro %}
{% macro spark__regexp_full_match(expression, pattern) %}{{ return("(" ~ expression ~ " rlike " ~ regex_literal('^(?:' ~ pattern ~ ')$') ~ ")") }}{% endmacro %}

{#- pattern matches somewhere in the text. -#}
{% macro regexp_contains(expression, pattern) %}{{ return(adapter.dispatch('regexp_contains')(expression, pattern)) }}{% endmacro %}
{% macro default__regexp_contains(expression, pattern) %}{{ return("regexp_matches(" ~ expression ~ ", " ~ regex_literal(pattern) ~ ")") }}{% endmacro %}
{% macro spark__regexp_contains(expression, pattern) %}{{ return("(" ~ expression ~ " rlike " ~ regex_literal(pattern) ~ ")") }}{% endmacro %}

{#- Group `group` of the first match ('' when none, on both engines). -#}
{% macro regexp_extract_group(expression, pattern, group) %}
    {{ return("regexp_extract(" ~ expression ~ ", " ~ regex_literal(pattern) ~ ", " ~ group ~ ")") }}
{% endmacro %}

{#- A 64-bit hash of the values, the same in every build (an id). DuckDB: hash(); Spark:
    xxhash64, which skips NULL arguments, so the NULL pattern is hashed first (else (NULL, 'a')
    and ('a', NULL) would collide). The two engines give different ids; no mart shows one. -#}
{% macro hash_id(expressions) %}{{ return(adapter.dispatch('hash_id')(expressions)) }}{% endmacro %}
{% macro default__hash_id(expressions) %}{{ return('hash(' ~ expressions | join(', ') ~ ')') }}{% endmacro %}
{% macro spark__hash_id(expressions) %}
    {%- set nulls = [] -%}
    {%- for e in expressions -%}{%- do nulls.append('isnull(' ~ e ~ ')') -%}{%- endfor -%}
    {{ return('xxhash64(array(' ~ nulls | join(', ') ~ '), ' ~ expressions | join(', ') ~ ')') }}
{% endmacro %}

{#- string_agg(expression, separator order by order_by), optionally of distinct values. -#}
{% macro string_agg_ordered(expression, separator, order_by, distinct=false) %}{{ return(adapter.dispatch('string_agg_ordered')(expression, separator, order_by, distinct)) }}{% endmacro %}
{% macro default__string_agg_ordered(expression, separator, order_by, distinct) %}
    {{ return('string_agg(' ~ ('distinct ' if distinct else '') ~ expression ~ ', ' ~ separator ~ ' order by ' ~ order_by ~ ')') }}
{% endmacro %}
{#- Spark 4.3 fails (ClassCastException in ListAgg) when one select holds several
    listagg(distinct ...): its distinct-aggregate rewrite swaps the sort order for a column. The
    distinct values sorted by themselves are a sorted set instead; NULL for no values, as
    string_agg gives. -#}
{% macro spark__string_agg_ordered(expression, separator, order_by, distinct) %}
    {%- if distinct and order_by | trim == expression | trim -%}
    {{ return('case when count(' ~ expression ~ ') = 0 then null else array_join(array_sort(collect_set(' ~ expression ~ ')), ' ~ separator ~ ') end') }}
    {%- endif -%}
    {{ return('listagg(' ~ ('distinct ' if distinct else '') ~ expression ~ ', ' ~ separator ~ ') within group (order by ' ~ order_by ~ ')') }}
{% endmacro %}

{#- `* exclude (columns)` (Spark: `* except (columns)`); prefix e.g. 'cleaned.'. -#}
{% macro star_exclude(columns, prefix='') %}{{ return(adapter.dispatch('star_exclude')(columns, prefix)) }}{% endmacro %}
{% macro default__star_exclude(columns, prefix) %}{{ return(prefix ~ '* exclude (' ~ columns | join(', ') ~ ')') }}{% endmacro %}
{% macro spark__star_exclude(columns, prefix) %}{{ return(prefix ~ '* except (' ~ columns | join(', ') ~ ')') }}{% endmacro %}

{#- The continuous quantiles of expression at the fractions, as a list (one sort). -#}
{% macro quantiles_cont(expression, fractions) %}{{ return(adapter.dispatch('quantiles_cont')(expression, fractions)) }}{% endmacro %}
{% macro default__quantiles_cont(expression, fractions) %}{{ return('quantile_cont(' ~ expression ~ ', [' ~ fractions | join(', ') ~ '])') }}{% endmacro %}
{% macro spark__quantiles_cont(expression, fractions) %}{{ return('percentile(' ~ expression ~ ', array(' ~ fractions | join(', ') ~ '))') }}{% endmacro %}

{#- The continuous quantile of expression at one fraction. -#}
{% macro quantile_cont(expression, fraction) %}{{ return(adapter.dispatch('quantile_cont')(expression, fraction)) }}{% endmacro %}
{% macro default__quantile_cont(expression, fraction) %}{{ return('quantile_cont(' ~ expression ~ ', ' ~ fraction ~ ')') }}{% endmacro %}
{% macro spark__quantile_cont(expression, fraction) %}{{ return('percentile(' ~ expression ~ ', ' ~ fraction ~ ')') }}{% endmacro %}

{#- Element `position` (1-based) of a list. -#}
{% macro list_element(expression, position) %}{{ return(adapter.dispatch('list_element')(expression, position)) }}{% endmacro %}
{% macro default__list_element(expression, position) %}{{ return(expression ~ '[' ~ position ~ ']') }}{% endmacro %}
{% macro spark__list_element(expression, position) %}{{ return('element_at(' ~ expression ~ ', ' ~ position ~ ')') }}{% endmacro %}

{#- One row per element of a list, in a select list. -#}
{% macro unnest_list(expression) %}{{ return(adapter.dispatch('unnest_list')(expression)) }}{% endmacro %}
{% macro default__unnest_list(expression) %}{{ return('unnest(' ~ expression ~ ')') }}{% endmacro %}
{% macro spark__unnest_list(expression) %}{{ return('explode(' ~ expression ~ ')') }}{% endmacro %}

{#- A lateral join to the elements of a list: `from t, <this>`, one column named `column`. -#}
{% macro lateral_unnest(expression, alias, column) %}{{ return(adapter.dispatch('lateral_unnest')(expression, alias, column)) }}{% endmacro %}
{% macro default__lateral_unnest(expression, alias, column) %}{{ return('unnest(' ~ expression ~ ') as ' ~ alias ~ '(' ~ column ~ ')') }}{% endmacro %}
{% macro spark__lateral_unnest(expression, alias, column) %}{{ return('lateral explode(' ~ expression ~ ') as ' ~ alias ~ '(' ~ column ~ ')') }}{% endmacro %}

{#- A CTE that is inlined where it is read, not computed once (DuckDB: NOT MATERIALIZED; Spark
    inlines CTEs anyway). -#}
{% macro cte_not_materialized() %}{{ return(adapter.dispatch('cte_not_materialized')()) }}{% endmacro %}
{% macro default__cte_not_materialized() %}{{ return('not materialized ') }}{% endmacro %}
{% macro spark__cte_not_materialized() %}{{ return('') }}{% endmacro %}

{#- A relation of the lake files a glob matches, one column `file` (no file is read). -#}
{% macro lake_files(pattern) %}{{ return(adapter.dispatch('lake_files')(pattern)) }}{% endmacro %}
{% macro default__lake_files(pattern) %}{{ return("glob('" ~ pattern.replace("'", "''") ~ "')") }}{% endmacro %}
{% macro spark__lake_files(pattern) %}
    {{ return("(select explode(pp_lake_glob('" ~ pattern.replace("\\", "\\\\").replace("'", "\\'") ~ "')) as file)") }}
{% endmacro %}

{#- Whether the Parquet files of a glob have a column (at least one file must match). -#}
{% macro parquet_has_column(pattern, column) %}{{ return(adapter.dispatch('parquet_has_column')(pattern, column)) }}{% endmacro %}
{% macro default__parquet_has_column(pattern, column) %}
    {%- set cols = run_query("select count(*) from parquet_schema('" ~ pattern.replace("'", "''") ~ "') where name = '" ~ column ~ "'") -%}
    {{ return(cols.columns[0].values()[0] > 0) }}
{% endmacro %}
{% macro spark__parquet_has_column(pattern, column) %}
    {%- set found = run_query("select * from parquet.`" ~ pattern.replace('`', '``') ~ "` limit 0") -%}
    {{ return(column in found.column_names) }}
{% endmacro %}

{#- A list of structs as a type name. fields: [(name, type)] with the engine's type names. -#}
{% macro struct_list_type(fields) %}{{ return(adapter.dispatch('struct_list_type')(fields)) }}{% endmacro %}
{% macro default__struct_list_type(fields) %}
    {%- set parts = [] -%}{%- for name, type in fields -%}{%- do parts.append(name ~ ' ' ~ type) -%}{%- endfor -%}
    {{ return('struct(' ~ parts | join(', ') ~ ')[]') }}
{% endmacro %}
{% macro spark__struct_list_type(fields) %}
    {%- set parts = [] -%}{%- for name, type in fields -%}{%- do parts.append(name ~ ':' ~ type) -%}{%- endfor -%}
    {{ return('array<struct<' ~ parts | join(',') ~ '>>') }}
{% endmacro %}

{#- A value as text for a surrogate key. On Spark a list of {code, type} structs (the `codes`
    column) is rendered as DuckDB renders it ([{'code': 99213, 'type': CPT}, ...]), so the md5
    keys of items are the same on both engines. -#}
{% macro key_text(expression) %}{{ return(adapter.dispatch('key_text')(expression)) }}{% endmacro %}
{% macro default__key_text(expression) %}{{ return('cast(' ~ expression ~ ' as varchar)') }}{% endmacro %}
{% macro spark__key_text(expression) %}
    {%- if expression.split('.')[-1] == 'codes' -%}
        {{ return("concat('[', array_join(transform(" ~ expression ~ ", c -> concat('{\\'code\\': ', coalesce(c.code, 'NULL'), ', \\'type\\': ', coalesce(c.type, 'NULL'), '}')), ', '), ']')") }}
    {%- endif -%}
    {{ return('cast(' ~ expression ~ ' as string)') }}
{% endmacro %}

{#- After an ascending sort key whose NULLs must sort last on both engines: DuckDB sorts NULLs
    last by default, Spark first (ascending). -#}
{% macro nulls_last() %}{{ return(adapter.dispatch('nulls_last')()) }}{% endmacro %}
{% macro default__nulls_last() %}{{ return('') }}{% endmacro %}
{% macro spark__nulls_last() %}{{ return(' nulls last') }}{% endmacro %}
