{#-
  md5 of the given expressions, NULL-safe and delimiter-safe: every value is cast to varchar,
  NULL becomes a sentinel that no real value uses, and parts are joined with a unit separator.
  (A self-written stand-in for dbt_utils.generate_surrogate_key: no dbt packages are installed.)
-#}
{% macro surrogate_key(expressions) -%}
    md5(concat_ws(chr(31),
    {%- for expression in expressions %}
        coalesce({{ key_text(expression) }}, chr(0) || 'null'){{ "," if not loop.last }}
    {%- endfor %}
    ))
{%- endmacro %}
