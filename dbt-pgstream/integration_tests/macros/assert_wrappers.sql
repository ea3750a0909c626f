-- run-operation assert_wrappers: drives every wrapper macro against the database and raises on any mismatch.
{% macro assert_wrappers() %}
  {%- set name = 'wrapper_probe' -%}
  {%- set other_schema = target.schema ~ '_reporting' -%}
  {%- set query = "select customer_id, count(*) as n from " ~ target.schema ~ ".raw_orders group by customer_id" -%}

  {%- do dbt_pgstream.pgstream_drop_stream_table(name, if_exists=true) -%}
  {%- do _expect(dbt_pgstream.pgstream_stream_table_exists(name) == false, 'probe absent at start') -%}
  {%- do dbt_pgstream.pgstream_create_stream_table(name, query, '5m', 'FULL', true) -%}
  {%- do _expect(dbt_pgstream.pgstream_stream_table_exists(name), 'exists after create') -%}
  {%- do _expect(dbt_pgstream.pgstream_stream_table_exists(target.schema ~ '.' ~ name), 'exists when schema-qualified') -%}
  {%- do _expect(not dbt_pgstream.pgstream_stream_table_exists(other_schema ~ '.' ~ name), 'schema-aware: not in another schema') -%}

  {%- set info = dbt_pgstream.pgstream_get_stream_table_info(name) -%}
  {%- do _expect(info is not none and info.pgs_schema == target.schema and info.pgs_name == name, 'info names it') -%}
  {%- do _expect(info.schedule == '5m' and info.refresh_mode == 'FULL', 'info has schedule 5m, FULL: ' ~ info) -%}

  {%- do _expect(dbt_pgstream.pgstream_alter_stream_table(name, schedule='5m') == false, 'alter with the same schedule does nothing') -%}
  {%- do _expect(dbt_pgstream.pgstream_alter_stream_table(name, schedule='7m', status='SUSPENDED'), 'alter changes') -%}
  {%- set info = dbt_pgstream.pgstream_get_stream_table_info(name) -%}
  {%- do _expect(info.schedule == '7m' and info.status == 'SUSPENDED', 'altered to 7m, SUSPENDED: ' ~ info) -%}
  {%- do dbt_pgstream.pgstream_alter_stream_table(name, status='ACTIVE') -%}

  {%- do dbt_pgstream.pgstream_refresh_stream_table(name) -%}
  {%- set row = dbt_pgstream.pgstream_source_freshness(name) -%}
  {%- do _expect(row is not none and row.last_refresh_at is not none and not row.stale, 'fresh after refresh: ' ~ row) -%}

  {%- do _expect(dbt_pgstream.pgstream_drop_stream_table(name), 'drop') -%}
  {%- do _expect(not dbt_pgstream.pgstream_stream_table_exists(name), 'absent after drop') -%}
  {%- do _expect(dbt_pgstream.pgstream_get_stream_table_info(name) is none, 'no info after drop') -%}
  {%- do _expect(dbt_pgstream.pgstream_drop_stream_table(name, if_exists=true) == false, 'drop if_exists of a missing one') -%}

  {%- set parsed = dbt_pgstream.pgstream_parse_name('"My ""Odd"" Schema".Some_Table') -%}
  {%- do _expect(parsed.schema == 'My "Odd" Schema' and parsed.identifier == 'some_table', 'parse quoted name: ' ~ parsed) -%}
  {%- do _expect(dbt_pgstream.pgstream_parse_name('x').schema == target.schema, 'unqualified means the target schema') -%}
  {%- do _expect(dbt_pgstream.pgstream_sql_literal("a'b\\c") == "E'a''b\\\\c'", 'sql literal escaping: ' ~ dbt_pgstream.pgstream_sql_literal("a'b\\c")) -%}
  {{ log("assert_wrappers: all wrapper checks passed", info=true) }}
{% endmacro %}

{% macro _expect(condition, message) %}
  {%- if not condition -%}
    {{ exceptions.raise_compiler_error("assert_wrappers failed: " ~ message) }}
  {%- endif -%}
{% endmacro %}
