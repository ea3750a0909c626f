{#- pgstream_sql_literal: a value as a safe PostgreSQL string literal (dbt.string_literal does not escape). -#}
{#
  pgstream_sql_literal(value)

  Returns `value` as a PostgreSQL escape-string literal: E'...' with every backslash
  and every single quote doubled, so the text arrives byte for byte whatever
  standard_conforming_strings says. `none` becomes NULL. Dollar signs and percent
  signs need no escaping in a literal.

  Args:
    value (str|none): the text to quote
#}
{% macro pgstream_sql_literal(value) -%}
  {{ return(adapter.dispatch('pgstream_sql_literal', 'dbt_pgstream')(value)) }}
{%- endmacro %}

{% macro default__pgstream_sql_literal(value) -%}
  {%- if value is none -%}
    {{ return('NULL') }}
  {%- endif -%}
  {%- set text = value | string -%}
  {{ return("E'" ~ text.replace('\\', '\\\\').replace("'", "''") ~ "'") }}
{%- endmacro %}

{% macro postgres__pgstream_sql_literal(value) -%}
  {{ return(dbt_pgstream.default__pgstream_sql_literal(value)) }}
{%- endmacro %}
