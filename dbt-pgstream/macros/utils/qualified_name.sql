{#- pgstream_qualified_name: "schema"."name" text for the SQL API from a name or Relation. -#}
{#
  pgstream_qualified_name(name)

  Returns the fully quoted `"schema"."identifier"` text that the pgstream functions
  take as their `name` argument, from a name (unqualified = target schema) or a
  dbt Relation. Pass the result through pgstream_sql_literal().

  Args:
    name (str|Relation): the stream table
#}
{% macro pgstream_qualified_name(name) -%}
  {%- set parsed = dbt_pgstream.pgstream_parse_name(name) -%}
  {{ return(dbt_pgstream.pgstream_quote_ident(parsed.schema) ~ '.' ~ dbt_pgstream.pgstream_quote_ident(parsed.identifier)) }}
{%- endmacro %}
