{#- pgstream_get_stream_table_info: one stream table's catalog row as a dict, or none. -#}
{#
  pgstream_get_stream_table_info(name)

  Reads the stream table's row from pgstream.pgs_stream_tables, looked up by schema
  AND name (an unqualified name means the target schema). Returns a dict with
  pgs_id, pgs_schema, pgs_name, defining_query, pgs_query_hash, schedule,
  refresh_mode, status, last_refresh_at, consecutive_errors, last_error; or none when
  there is no such stream table (and at parse time).

  Args:
    name (str|Relation): the stream table, `name`, `schema.name` or a Relation
#}
{% macro pgstream_get_stream_table_info(name) -%}
  {{ return(adapter.dispatch('pgstream_get_stream_table_info', 'dbt_pgstream')(name)) }}
{%- endmacro %}

{% macro default__pgstream_get_stream_table_info(name) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter("pgstream_get_stream_table_info") }}
{%- endmacro %}

{% macro postgres__pgstream_get_stream_table_info(name) -%}
  {%- if not execute -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set parsed = dbt_pgstream.pgstream_parse_name(name) -%}
  {%- set query -%}
    select pgs_id, pgs_schema, pgs_name, defining_query, pgs_query_hash, schedule,
           refresh_mode, status, last_refresh_at, consecutive_errors, last_error
    from pgstream.pgs_stream_tables
    where pgs_schema = {{ dbt_pgstream.pgstream_sql_literal(parsed.schema) }}
      and pgs_name = {{ dbt_pgstream.pgstream_sql_literal(parsed.identifier) }}
  {%- endset -%}
  {%- set result = run_query(query) -%}
  {%- if result is none or result.rows | length == 0 -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set info = {} -%}
  {%- for column in result.column_names -%}
    {%- do info.update({column: result.rows[0][column]}) -%}
  {%- endfor -%}
  {{ return(info) }}
{%- endmacro %}
