{#- pgstream_source_freshness: a stream table's freshness row from pgstream.pg_stat_stream_tables. -#}
{#
  pgstream_source_freshness(name)

  Returns the monitoring row of a stream table (schema AND name; unqualified means
  the target schema) as a dict: pgs_schema, pgs_name, last_refresh_at, staleness,
  staleness_seconds, stale, consecutive_errors; or none. `dbt source freshness`
  itself needs no macro: declare a source on pgstream.pg_stat_stream_tables with
  loaded_at_field last_refresh_at and a freshness filter (see the README). This
  macro is for run-operations and hooks that want the same numbers.

  Args:
    name (str|Relation): the stream table
#}
{% macro pgstream_source_freshness(name) -%}
  {{ return(adapter.dispatch('pgstream_source_freshness', 'dbt_pgstream')(name)) }}
{%- endmacro %}

{% macro default__pgstream_source_freshness(name) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('pgstream_source_freshness') }}
{%- endmacro %}

{% macro postgres__pgstream_source_freshness(name) -%}
  {%- if not execute -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set parsed = dbt_pgstream.pgstream_parse_name(name) -%}
  {%- set query -%}
    select pgs_schema, pgs_name, last_refresh_at, staleness,
           extract(epoch from staleness)::bigint as staleness_seconds, stale, consecutive_errors
    from pgstream.pg_stat_stream_tables
    where pgs_schema = {{ dbt_pgstream.pgstream_sql_literal(parsed.schema) }}
      and pgs_name = {{ dbt_pgstream.pgstream_sql_literal(parsed.identifier) }}
  {%- endset -%}
  {%- set result = run_query(query) -%}
  {%- if result.rows | length == 0 -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set row = {} -%}
  {%- for column in result.column_names -%}
    {%- do row.update({column: result.rows[0][column]}) -%}
  {%- endfor -%}
  {{ return(row) }}
{%- endmacro %}
