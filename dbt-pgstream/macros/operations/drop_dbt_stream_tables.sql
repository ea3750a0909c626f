{#- drop_dbt_stream_tables: run-operation that drops only the stream tables of this project's models. -#}
{#
  drop_dbt_stream_tables()

  `dbt run-operation drop_dbt_stream_tables`. Drops the stream tables of the models
  in this dbt project (graph.nodes) materialized as `stream_table`, honouring
  stream_table_name / stream_table_schema, readers first. Stream tables made
  outside this project are left alone; missing ones are skipped.
#}
{% macro drop_dbt_stream_tables() -%}
  {{ return(adapter.dispatch('drop_dbt_stream_tables', 'dbt_pgstream')()) }}
{%- endmacro %}

{% macro default__drop_dbt_stream_tables() -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('drop_dbt_stream_tables') }}
{%- endmacro %}

{% macro postgres__drop_dbt_stream_tables() -%}
  {%- if execute -%}
    {%- set ours = [] -%}
    {%- for relation in dbt_pgstream.pgstream_dbt_stream_tables() -%}
      {%- do ours.append([relation.schema, relation.identifier]) -%}
    {%- endfor -%}
    {%- set ns = namespace(dropped=0) -%}
    {%- for relation in dbt_pgstream.pgstream_stream_tables_in_order() | reverse -%}
      {%- if [relation.schema, relation.identifier] in ours -%}
        {%- do dbt_pgstream.pgstream_drop_stream_table(relation) -%}
        {%- set ns.dropped = ns.dropped + 1 -%}
      {%- endif -%}
    {%- endfor -%}
    {{ log("pg_stream: dropped " ~ ns.dropped ~ " stream table(s) of this project", info=true) }}
  {%- endif -%}
{%- endmacro %}
