{#- Characters trimmed from text: space, tab, LF, CR, no-break space. -#}
{% macro _trim_chars() -%}
    ' ' || chr(9) || chr(10) || chr(13) || chr(160)
{%- endmacro %}

{#- Trimmed text with empty strings turned into NULL. -#}
{% macro clean_text(column) -%}
    nullif({{ trim_chars('cast(' ~ column ~ ' as ' ~ string_type() ~ ')', _trim_chars()) }}, '')
{%- endmacro %}

{#- Trimmed, lower-cased enum value with empty strings turned into NULL. -#}
{% macro clean_enum(column) -%}
    nullif(lower({{ trim_chars('cast(' ~ column ~ ' as ' ~ string_type() ~ ')', _trim_chars()) }}), '')
{%- endmacro %}

{#- Trimmed, upper-cased code or code system with empty strings turned into NULL. -#}
{% macro clean_code(column) -%}
    nullif(upper({{ trim_chars('cast(' ~ column ~ ' as ' ~ string_type() ~ ')', _trim_chars()) }}), '')
{%- endmacro %}
