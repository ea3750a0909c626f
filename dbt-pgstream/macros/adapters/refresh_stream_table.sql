{#- pgstream_refresh_stream_table: wrapper around pgstream.refresh_stream_table(). -#}
{#
  pgstream_refresh_stream_table(name)

  Recomputes the stream table now with pgstream.refresh_stream_table() and commits.
  A failure is recorded in the catalog by the engine and raised here.

  Args:
    name (str|Relation): stream table name; unqualified means the target schema
#}
{% macro pgstream_refresh_stream_table(name) -%}
  {{ return(adapter.dispatch('pgstream_refresh_stream_table', 'dbt_pgstream')(name)) }}
{%- endmacro %}

{% macro default__pgstream_refresh_stream_table(name) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('pgstream_refresh_stream_table') }}
{%- endmacro %}

{% macro postgres__pgstream_refresh_stream_table(name) -%}
  {%- if execute -%}
    {%- set qualified = dbt_pgstream.pgstream_qualified_name(name) -%}
    {%- do dbt_pgstream.pgstream_run_committed("select pgstream.refresh_stream_table(" ~ dbt_pgstream.pgstream_sql_literal(qualified) ~ ")", 'refresh_stream_table') -%}
    {{ log("pg_stream: refreshed " ~ dbt_pgstream.pgstream_display_name(name), info=true) }}
  {%- endif -%}
{%- endmacro %}
