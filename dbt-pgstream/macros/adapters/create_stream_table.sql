{#- pgstream_create_stream_table: wrapper around pgstream.create_stream_table(). -#}
{#
  pgstream_create_stream_table(name, query, schedule='1m', refresh_mode='DIFFERENTIAL', initialize=true)

  Creates a stream table with pgstream.create_stream_table() and commits. The
  stream_table materialization does not use it (it makes one
  pgstream_dbt.materialize() call); it is for run-operations and hooks.

  Args:
    name (str|Relation): stream table name; unqualified means the target schema
    query (str): the defining SQL query
    schedule (str): refresh schedule ('1m', '5m', '1h30m', '*/5 * * * *', '@hourly')
    refresh_mode (str): 'FULL', 'DIFFERENTIAL' or 'AUTO'
    initialize (bool): populate it now
#}
{% macro pgstream_create_stream_table(name, query, schedule='1m', refresh_mode='DIFFERENTIAL', initialize=true) -%}
  {{ return(adapter.dispatch('pgstream_create_stream_table', 'dbt_pgstream')(name, query, schedule, refresh_mode, initialize)) }}
{%- endmacro %}

{% macro default__pgstream_create_stream_table(name, query, schedule, refresh_mode, initialize) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('pgstream_create_stream_table') }}
{%- endmacro %}

{% macro postgres__pgstream_create_stream_table(name, query, schedule, refresh_mode, initialize) -%}
  {%- if execute -%}
    {%- set qualified = dbt_pgstream.pgstream_qualified_name(name) -%}
    {%- set create_sql -%}
      select pgstream.create_stream_table(
        {{ dbt_pgstream.pgstream_sql_literal(qualified) }},
        {{ dbt_pgstream.pgstream_sql_literal(query) }},
        {{ dbt_pgstream.pgstream_sql_literal(schedule) }},
        {{ dbt_pgstream.pgstream_sql_literal(refresh_mode) }},
        {{ 'true' if initialize else 'false' }}
      )
    {%- endset -%}
    {%- do dbt_pgstream.pgstream_run_committed(create_sql, 'create_stream_table') -%}
    {{ log("pg_stream: created " ~ dbt_pgstream.pgstream_display_name(name), info=true) }}
  {%- endif -%}
{%- endmacro %}
