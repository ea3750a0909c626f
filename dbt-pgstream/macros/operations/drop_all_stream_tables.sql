{#- drop_all_stream_tables: run-operation that drops every stream table in the catalog. -#}
{#
  drop_all_stream_tables()

  `dbt run-operation drop_all_stream_tables`. Drops every stream table in
  pgstream.pgs_stream_tables, dbt's or not, readers before the stream tables they
  read. For only this project's models use drop_dbt_stream_tables.
#}
{% macro drop_all_stream_tables() -%}
  {{ return(adapter.dispatch('drop_all_stream_tables', 'dbt_pgstream')()) }}
{%- endmacro %}

{% macro default__drop_all_stream_tables() -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('drop_all_stream_tables') }}
{%- endmacro %}

{% macro postgres__drop_all_stream_tables() -%}
  {%- if execute -%}
    {%- set relations = dbt_pgstream.pgstream_stream_tables_in_order() | reverse | list -%}
    {%- for relation in relations -%}
      {%- do dbt_pgstream.pgstream_drop_stream_table(relation) -%}
    {%- endfor -%}
    {%- if relations | length == 0 -%}
      {{ log("pg_stream: no stream tables found to drop", info=true) }}
    {%- else -%}
      {{ log("pg_stream: dropped " ~ relations | length ~ " stream table(s)", info=true) }}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}
