{#- pgstream_alter_stream_table: wrapper around pgstream.alter_stream_table() that changes only what differs. -#}
{#
  pgstream_alter_stream_table(name, schedule=none, refresh_mode=none, status=none)

  Reads the stream table's catalog row and calls pgstream.alter_stream_table() with
  only the values that differ from it (none = keep); does nothing when nothing
  differs. Raises when there is no such stream table. Returns true when it altered.

  Args:
    name (str|Relation): stream table name; unqualified means the target schema
    schedule (str): new schedule, or none to keep
    refresh_mode (str): new refresh mode ('FULL', 'DIFFERENTIAL', 'AUTO'), or none
    status (str): 'ACTIVE' or 'SUSPENDED', or none
#}
{% macro pgstream_alter_stream_table(name, schedule=none, refresh_mode=none, status=none) -%}
  {{ return(adapter.dispatch('pgstream_alter_stream_table', 'dbt_pgstream')(name, schedule, refresh_mode, status)) }}
{%- endmacro %}

{% macro default__pgstream_alter_stream_table(name, schedule, refresh_mode, status) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('pgstream_alter_stream_table') }}
{%- endmacro %}

{% macro postgres__pgstream_alter_stream_table(name, schedule, refresh_mode, status) -%}
  {%- if not execute -%}
    {{ return(false) }}
  {%- endif -%}
  {%- set qualified = dbt_pgstream.pgstream_qualified_name(name) -%}
  {%- set current = dbt_pgstream.pgstream_get_stream_table_info(name) -%}
  {%- if current is none -%}
    {{ exceptions.raise_compiler_error("dbt_pgstream: cannot alter " ~ qualified ~ ": no such stream table") }}
  {%- endif -%}
  {%- set wanted = {'schedule': schedule, 'refresh_mode': refresh_mode, 'status': status} -%}
  {%- set changes = {} -%}
  {%- for key, value in wanted.items() -%}
    {%- if value is not none and (value | string) != (current[key] | string) -%}
      {%- do changes.update({key: value}) -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if changes | length == 0 -%}
    {{ log("pg_stream: unchanged " ~ dbt_pgstream.pgstream_display_name(name) ~ " (configuration already as asked)", info=true) }}
    {{ return(false) }}
  {%- endif -%}
  {%- set alter_sql -%}
    select pgstream.alter_stream_table(
      {{ dbt_pgstream.pgstream_sql_literal(qualified) }},
      schedule => {{ dbt_pgstream.pgstream_sql_literal(changes.get('schedule')) }},
      refresh_mode => {{ dbt_pgstream.pgstream_sql_literal(changes.get('refresh_mode')) }},
      status => {{ dbt_pgstream.pgstream_sql_literal(changes.get('status')) }}
    )
  {%- endset -%}
  {%- do dbt_pgstream.pgstream_run_committed(alter_sql, 'alter_stream_table') -%}
  {{ log("pg_stream: altered " ~ dbt_pgstream.pgstream_display_name(name) ~ " (" ~ changes.keys() | sort | join(', ') ~ ")", info=true) }}
  {{ return(true) }}
{%- endmacro %}
