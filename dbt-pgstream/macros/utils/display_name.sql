{#- pgstream_display_name: schema.name as log lines show it (unquoted). -#}
{#
  pgstream_display_name(name)

  Returns `schema.identifier` without quotes, the form the log lines use
  (`pg_stream: refreshed analytics.order_totals`).

  Args:
    name (str|Relation): the stream table
#}
{% macro pgstream_display_name(name) -%}
  {%- set parsed = dbt_pgstream.pgstream_parse_name(name) -%}
  {{ return(parsed.schema ~ '.' ~ parsed.identifier) }}
{%- endmacro %}
