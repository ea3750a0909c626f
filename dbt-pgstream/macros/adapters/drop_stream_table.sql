{#- pgstream_drop_stream_table: wrapper around pgstream.drop_stream_table(). -#}
{#
  pgstream_drop_stream_table(name, if_exists=false)

  Drops the stream table and its catalog rows with pgstream.drop_stream_table() and
  commits. The engine refuses (SQLSTATE 2BP01) when views depend on it. With
  if_exists, a missing stream table is not an error. Returns true when it dropped.

  Args:
    name (str|Relation): stream table name; unqualified means the target schema
    if_exists (bool): do nothing (and return false) when there is no such stream table
#}
{% macro pgstream_drop_stream_table(name, if_exists=false) -%}
  {{ return(adapter.dispatch('pgstream_drop_stream_table', 'dbt_pgstream')(name, if_exists)) }}
{%- endmacro %}

{% macro default__pgstream_drop_stream_table(name, if_exists) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('pgstream_drop_stream_table') }}
{%- endmacro %}

{% macro postgres__pgstream_drop_stream_table(name, if_exists) -%}
  {%- if not execute -%}
    {{ return(false) }}
  {%- endif -%}
  {%- set qualified = dbt_pgstream.pgstream_qualified_name(name) -%}
  {%- if if_exists and not dbt_pgstream.pgstream_stream_table_exists(name) -%}
    {{ return(false) }}
  {%- endif -%}
  {%- do dbt_pgstream.pgstream_run_committed("select pgstream.drop_stream_table(" ~ dbt_pgstream.pgstream_sql_literal(qualified) ~ ")", 'drop_stream_table') -%}
  {{ log("pg_stream: dropped " ~ dbt_pgstream.pgstream_display_name(name), info=true) }}
  {{ return(true) }}
{%- endmacro %}
