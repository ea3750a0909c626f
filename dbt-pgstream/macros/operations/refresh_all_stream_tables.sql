{#- refresh_all_stream_tables: run-operation that refreshes every stream table, sources first. -#}
{#
  refresh_all_stream_tables()

  `dbt run-operation refresh_all_stream_tables`. Refreshes every stream table in the
  catalog in dependency order: a stream table that reads another is refreshed after
  it, so it sees the fresh rows. Stops at the first failure (which the engine
  records in the catalog).
#}
{% macro refresh_all_stream_tables() -%}
  {{ return(adapter.dispatch('refresh_all_stream_tables', 'dbt_pgstream')()) }}
{%- endmacro %}

{% macro default__refresh_all_stream_tables() -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('refresh_all_stream_tables') }}
{%- endmacro %}

{% macro postgres__refresh_all_stream_tables() -%}
  {%- if execute -%}
    {%- set relations = dbt_pgstream.pgstream_stream_tables_in_order() -%}
    {%- for relation in relations -%}
      {%- do dbt_pgstream.pgstream_refresh_stream_table(relation) -%}
    {%- endfor -%}
    {{ log("pg_stream: refreshed " ~ relations | length ~ " stream table(s)", info=true) }}
  {%- endif -%}
{%- endmacro %}
