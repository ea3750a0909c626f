{#- pgstream_quote_ident: one identifier double-quoted with embedded double quotes doubled. -#}
{#
  pgstream_quote_ident(identifier)

  Returns `identifier` as a quoted PostgreSQL identifier ("My ""odd"" name"). The
  case is kept, as dbt-postgres keeps it (it quotes every identifier).

  Args:
    identifier (str): the identifier, unquoted
#}
{% macro pgstream_quote_ident(identifier) -%}
  {{ return('"' ~ (identifier | string).replace('"', '""') ~ '"') }}
{%- endmacro %}
