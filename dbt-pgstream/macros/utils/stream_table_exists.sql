{#- pgstream_stream_table_exists: whether the catalog has a stream table of that schema and name. -#}
{#
  pgstream_stream_table_exists(name)

  True when pgstream.pgs_stream_tables has a stream table with this schema AND name
  (an unqualified name means the target schema). False at parse time.

  Args:
    name (str|Relation): the stream table, `name`, `schema.name` or a Relation
#}
{% macro pgstream_stream_table_exists(name) -%}
  {{ return(adapter.dispatch('pgstream_stream_table_exists', 'dbt_pgstream')(name)) }}
{%- endmacro %}

{% macro default__pgstream_stream_table_exists(name) -%}
  {{ return(dbt_pgstream.pgstream_get_stream_table_info(name) is not none) }}
{%- endmacro %}

{% macro postgres__pgstream_stream_table_exists(name) -%}
  {{ return(dbt_pgstream.default__pgstream_stream_table_exists(name)) }}
{%- endmacro %}
