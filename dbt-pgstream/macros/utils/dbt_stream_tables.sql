{#- pgstream_dbt_stream_tables: the stream table Relations of this project's stream_table models. -#}
{#
  pgstream_dbt_stream_tables()

  The Relations (see pgstream_model_stream_table) of every model in the graph whose
  materialization is `stream_table`, whether or not the stream table exists.
#}
{% macro pgstream_dbt_stream_tables() -%}
  {%- set relations = [] -%}
  {%- if execute -%}
    {%- for node in graph.nodes.values() -%}
      {%- if node.resource_type == 'model' and node.config.materialized == 'stream_table' -%}
        {%- do relations.append(dbt_pgstream.pgstream_model_stream_table(node)) -%}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {{ return(relations) }}
{%- endmacro %}
