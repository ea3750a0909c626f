{#- pgstream_stream_table_for_relation: a model's dbt Relation mapped to its stream table Relation. -#}
{#
  pgstream_stream_table_for_relation(relation)

  Given the dbt Relation of a model (as ref() or a generic test's `model` gives
  it), returns the Relation of the stream table it materializes into: the same,
  unless the model sets stream_table_name / stream_table_schema.

  Args:
    relation (Relation): a model's relation
#}
{% macro pgstream_stream_table_for_relation(relation) -%}
  {%- if execute -%}
    {%- for node in graph.nodes.values() -%}
      {%- if node.resource_type == 'model' and node.schema == relation.schema
            and (node.alias or node.name) == relation.identifier -%}
        {{ return(dbt_pgstream.pgstream_model_stream_table(node)) }}
      {%- endif -%}
    {%- endfor -%}
  {%- endif -%}
  {{ return(relation) }}
{%- endmacro %}
