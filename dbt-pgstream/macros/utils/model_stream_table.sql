{#- pgstream_model_stream_table: the stream table Relation a dbt model node materializes into. -#}
{#
  pgstream_model_stream_table(node)

  For a model node of the graph (graph.nodes value), the Relation of its stream
  table: schema `stream_table_schema` or the node's schema, name `stream_table_name`
  or the node's alias, exactly as the stream_table materialization names it.

  Args:
    node (dict): a graph node
#}
{% macro pgstream_model_stream_table(node) -%}
  {%- set node_config = node.config or {} -%}
  {{ return(api.Relation.create(database=node.database,
                                schema=node_config.get('stream_table_schema') or node.schema,
                                identifier=node_config.get('stream_table_name') or node.alias or node.name,
                                type='table')) }}
{%- endmacro %}
