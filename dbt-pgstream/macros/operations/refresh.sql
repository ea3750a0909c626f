{#- refresh: run-operation that refreshes one model's stream table now. -#}
{#
  refresh(model_name)

  `dbt run-operation refresh --args '{model_name: order_totals}'`. Finds the model in
  the graph and refreshes the stream table it materializes into (honouring
  stream_table_name / stream_table_schema); a name that is no model is taken as a
  stream table name (`name` in the target schema, or `schema.name`).

  Args:
    model_name (str): a dbt model name, or a stream table name
#}
{% macro refresh(model_name) -%}
  {{ return(adapter.dispatch('refresh', 'dbt_pgstream')(model_name)) }}
{%- endmacro %}

{% macro default__refresh(model_name) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('refresh') }}
{%- endmacro %}

{% macro postgres__refresh(model_name) -%}
  {%- if execute -%}
    {%- set node = dbt_pgstream.pgstream_find_model(model_name) -%}
    {%- if node is not none -%}
      {%- do dbt_pgstream.pgstream_refresh_stream_table(dbt_pgstream.pgstream_model_stream_table(node)) -%}
    {%- else -%}
      {%- do dbt_pgstream.pgstream_refresh_stream_table(model_name) -%}
    {%- endif -%}
  {%- endif -%}
{%- endmacro %}
