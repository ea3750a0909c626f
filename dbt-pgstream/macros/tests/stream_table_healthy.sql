{#- stream_table_healthy: generic test; fails unless the model is a healthy, fresh stream table. -#}
{#
  test stream_table_healthy(model, max_staleness=none, check_staleness=true)

  One failing row (with a `problem` column) when the model's stream table is not in
  pgstream.pg_stat_stream_tables (not a stream table), has consecutive_errors > 0, or
  is stale. Stale means the view's `stale` flag (never refreshed, or past its
  schedule); with `max_staleness` (an interval such as '2 hours') it means never
  refreshed or refreshed longer ago than that; `check_staleness: false` skips the
  staleness check. stream_table_name / stream_table_schema overrides are honoured.

  Args:
    model (Relation): the model under test (dbt passes it)
    max_staleness (str): interval text that relaxes (or tightens) the staleness check
    check_staleness (bool): set false to check only existence and errors
#}
{% test stream_table_healthy(model, max_staleness=none, check_staleness=true) %}
  {{ return(adapter.dispatch('test_stream_table_healthy', 'dbt_pgstream')(model, max_staleness, check_staleness)) }}
{% endtest %}

{% macro default__test_stream_table_healthy(model, max_staleness, check_staleness) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('stream_table_healthy') }}
{%- endmacro %}

{% macro postgres__test_stream_table_healthy(model, max_staleness, check_staleness) -%}
  {%- set relation = dbt_pgstream.pgstream_stream_table_for_relation(model) -%}
  {%- if not check_staleness -%}
    {%- set stale_sql = 'false' -%}
  {%- elif max_staleness is not none -%}
    {%- set stale_sql = 's.last_refresh_at is null or s.staleness > ' ~ dbt_pgstream.pgstream_sql_literal(max_staleness) ~ '::interval' -%}
  {%- else -%}
    {%- set stale_sql = 's.stale' -%}
  {%- endif -%}
  with wanted as (
      select {{ dbt_pgstream.pgstream_sql_literal(relation.schema) }}::text as pgs_schema,
             {{ dbt_pgstream.pgstream_sql_literal(relation.identifier) }}::text as pgs_name
  )
  select w.pgs_schema, w.pgs_name,
         case
           when s.pgs_id is null then 'not a stream table'
           when s.consecutive_errors > 0 then
             'consecutive_errors = ' || s.consecutive_errors || ': ' || coalesce(s.last_error, '')
           else 'stale: last refreshed ' || coalesce(s.last_refresh_at::text, 'never')
                || ', schedule ' || s.schedule
         end as problem
  from wanted w
  left join pgstream.pg_stat_stream_tables s
    on s.pgs_schema = w.pgs_schema and s.pgs_name = w.pgs_name
  where s.pgs_id is null
     or s.consecutive_errors > 0
     or ({{ stale_sql }})
{%- endmacro %}
