{#- pgstream_model_stream_table: the stream table Relation a dbt model node materializes into. -#}
{#
  pgstream_model_stream_table(node)

  For a model node of the graph (graph.nodes value), the Relation of its stream
  table: schema `stream_table_schema` or the node's schema, name `stream_table_name`
  or the node's alias, exactly as the stream_table materialization names it. Without
  overrides it is read from the node's relation_name, so the project's `quoting`
  config is honoured (an unquoted identifier folds to lower case).

  Args:
    node (dict): a graph node
#}
{% macro pgstream_model_stream_table(node) -%}
  {%- set node_config = node.config or {} -%}
  {%- set schema_override = node_config.get('stream_table_schema') -%}
  {%- set name_override = node_config.get('stream_table_name') -%}
  {%- if not schema_override and not name_override and node.relation_name -%}
    {%- set parsed = dbt_pgstream.pgstream_parse_name(node.relation_name) -%}
    {{ return(api.Relation.create(database=node.database, schema=parsed.schema,
                                  identifier=parsed.identifier, type='table')) }}
  {%- endif -%}
  {{ return(api.Relation.create(database=node.database,
                                schema=schema_override or node.schema,
                                identifier=name_override or node.alias or node.name,
                                type='table')) }}
{%- endmacro %}
