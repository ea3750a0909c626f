{#- pgstream_refresh: run-operation that refreshes one model's stream table now (`refresh`: its deprecated alias). -#}
{#
  pgstream_refresh(model_name)

  `dbt run-operation pgstream_refresh --args '{model_name: order_totals}'`. Finds the
  model in the graph and refreshes the stream table it materializes into; a name that
  is no model is taken as a stream table name (`name` in the target schema, or
  `schema.name`).

  refresh(model_name) does the same and warns that it is deprecated: a macro named
  `refresh` collides with a project's own too easily. It goes in a later release.

  Args:
    model_name (str): a dbt model name, or a stream table name
#}
{% macro pgstream_refresh(model_name) -%}
  {{ return(adapter.dispatch('pgstream_refresh', 'dbt_pgstream')(model_name)) }}
{%- endmacro %}

{% macro default__pgstream_refresh(model_name) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('pgstream_refresh') }}
{%- endmacro %}

{% macro postgres__pgstream_refresh(model_name) -%}
  {%- if execute -%}
    {%- set node = dbt_pgstream.pgstream_find_model(model_name) -%}
    {%- if node is not none -%}
      {%- do dbt_pgstream.pgstream_refresh_stream_table(dbt_pgstream.pgstream_model_stream_table(node)) -%}
    {%- else -%}
      {%- do dbt_pgstream.pgstream_refresh_stream_table(model_name) -%}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}

{% macro refresh(model_name) -%}
  {%- if execute -%}
    {%- do exceptions.warn("dbt_pgstream: the operation `refresh` is deprecated and will be removed in a later release; use `pgstream_refresh` (same arguments)") -%}
  {%- endif -%}
  {{ return(dbt_pgstream.pgstream_refresh(model_name)) }}
{%- endmacro %}
