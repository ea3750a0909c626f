{#- pgstream_find_model: the graph node of a model by name (root project first), or none. -#}
{#
  pgstream_find_model(model_name)

  Looks `model_name` up among the graph's model nodes; a model of the root project
  wins over a package's model of the same name. Returns the node, or none.

  Args:
    model_name (str): the dbt model name
#}
{% macro pgstream_find_model(model_name) -%}
  {%- if not execute -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set found = namespace(node=none) -%}
  {%- for node in graph.nodes.values() -%}
    {%- if node.resource_type == 'model' and node.name == model_name -%}
      {%- if found.node is none or node.package_name == project_name -%}
        {%- set found.node = node -%}
      {%- endif -%}
    {%- endif -%}
  {%- endfor -%}
  {{ return(found.node) }}
{%- endmacro %}
