{#- pgstream_run_committed: runs one statement in its own dbt transaction and commits it. -#}
{#
  pgstream_run_committed(sql, name='pgstream_statement')

  Runs `sql` through dbt's statement() with auto_begin (so dbt opens a transaction
  when none is open) and commits, then returns the result table. run_query() alone
  does not commit, and a run-operation ends by closing its connection, which would
  roll the work back. Inside an open transaction (e.g. a hook), it commits that
  transaction too.

  Args:
    sql (str): the statement
    name (str): the statement name shown in dbt's debug log
#}
{% macro pgstream_run_committed(sql, name='pgstream_statement') -%}
  {%- call statement(name, fetch_result=True, auto_begin=True) -%}
    {{ sql }}
  {%- endcall -%}
  {%- do adapter.commit() -%}
  {{ return(load_result(name).table) }}
{%- endmacro %}
