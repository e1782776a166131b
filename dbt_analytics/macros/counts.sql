{#-
  count_low_high(text, kind): the `count` charge kind ("count of allowed amounts") parsed from its
  text into a numeric range, as two columns count_low and count_high (NULL for other kinds or
  text that is not a count). "12" -> 12, 12; "1 through 10" / "1-10" / "1 to 10" -> 1, 10;
  "fewer than 11" / "< 11" -> 0, 10; "11+" / "more than 10" -> 11, NULL. Thousands separators
  are ignored.
-#}
{% macro count_low_high(text, kind) -%}
    {%- set t = regexp_replace_all("lower(trim(cast(" ~ text ~ " as " ~ string_type() ~ ")))", '[[:space:],]+', ' ') -%}
    {%- set k = "lower(trim(cast(" ~ kind ~ " as " ~ string_type() ~ ")))" -%}
    {%- set digits = "replace(" ~ t ~ ", ' ', '')" -%}
    case when {{ k }} = 'count' then
        case
            when {{ regexp_full_match(digits, '[0-9]+') }} then cast({{ digits }} as bigint)
            when {{ regexp_full_match(t, '[0-9]+ ?(through|thru|to|-|–) ?[0-9]+') }}
                then cast({{ regexp_extract_group(t, '^([0-9]+)', 1) }} as bigint)
            when {{ regexp_full_match(t, '(fewer than|less than|under|<) ?[0-9]+') }} then 0
            when {{ regexp_full_match(t, '([0-9]+ ?\+|(more than|greater than|over|>) ?[0-9]+)') }}
                then cast({{ regexp_extract_group(t, '([0-9]+)', 1) }} as bigint)
                    + case when {{ regexp_contains(t, '(more than|greater than|over|>)') }} then 1 else 0 end
        end
    end as count_low,
    case when {{ k }} = 'count' then
        case
            when {{ regexp_full_match(digits, '[0-9]+') }} then cast({{ digits }} as bigint)
            when {{ regexp_full_match(t, '[0-9]+ ?(through|thru|to|-|–) ?[0-9]+') }}
                then cast({{ regexp_extract_group(t, '([0-9]+)$', 1) }} as bigint)
            when {{ regexp_full_match(t, '(fewer than|less than|under|<) ?[0-9]+') }}
                then cast({{ regexp_extract_group(t, '([0-9]+)', 1) }} as bigint) - 1
        end
    end as count_high
{%- endmacro %}
