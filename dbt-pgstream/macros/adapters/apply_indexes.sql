{#- pgstream_apply_indexes: the dbt-postgres `indexes` config on a stream table, idempotently. -#}
{#
  pgstream_apply_indexes(relation, indexes)

  Makes the stream table's indexes match the `indexes` config (the dbt-postgres
  shape: a list of {columns: [...], unique: bool, type: 'btree'|'hash'|...}).
  dbt-postgres names its indexes with a timestamp (so `create index if not exists`
  would add a duplicate every run); this macro names each index
  `pgs_idx_<md5 of schema, table, columns, unique, type>` instead, creates it with
  IF NOT EXISTS, and drops the `pgs_idx_*` indexes on the table that the config
  no longer lists. `indexes: []` drops them all; no `indexes` key leaves them alone.
  The engine's own `__pgs_row_id` index is never touched.

  Args:
    relation (Relation): the stream table
    indexes (list|none): the model's `indexes` config
#}
{% macro pgstream_apply_indexes(relation, indexes) -%}
  {{ return(adapter.dispatch('pgstream_apply_indexes', 'dbt_pgstream')(relation, indexes)) }}
{%- endmacro %}

{% macro default__pgstream_apply_indexes(relation, indexes) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('pgstream_apply_indexes') }}
{%- endmacro %}

{% macro postgres__pgstream_apply_indexes(relation, indexes) -%}
  {%- if indexes is none or not execute -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set wanted = [] -%}
  {%- for index_dict in indexes -%}
    {%- set index_config = adapter.parse_index(index_dict) -%}
    {%- set key = [relation.schema, relation.identifier] + index_config.columns + [index_config.unique | string, index_config.type | string] -%}
    {%- set index_name = 'pgs_idx_' ~ local_md5(key | join('|')) -%}
    {%- do wanted.append(index_name) -%}
    {%- call statement('pgstream_index_' ~ loop.index) -%}
      create {% if index_config.unique %}unique {% endif %}index if not exists {{ dbt_pgstream.pgstream_quote_ident(index_name) }}
      on {{ relation }}{% if index_config.type %} using {{ index_config.type }}{% endif %}
      ({{ index_config.columns | join(', ') }})
    {%- endcall -%}
  {%- endfor -%}
  {%- set existing_sql -%}
    select i.relname as index_name
    from pg_index x
    join pg_class i on i.oid = x.indexrelid
    join pg_class t on t.oid = x.indrelid
    join pg_namespace n on n.oid = t.relnamespace
    where n.nspname = {{ dbt_pgstream.pgstream_sql_literal(relation.schema) }}
      and t.relname = {{ dbt_pgstream.pgstream_sql_literal(relation.identifier) }}
      and i.relname like 'pgs\_idx\_%'
  {%- endset -%}
  {%- for row in run_query(existing_sql).rows -%}
    {%- if row['index_name'] not in wanted -%}
      {%- call statement('pgstream_drop_index_' ~ loop.index) -%}
        drop index if exists {{ dbt_pgstream.pgstream_quote_ident(relation.schema) }}.{{ dbt_pgstream.pgstream_quote_ident(row['index_name']) }}
      {%- endcall -%}
    {%- endif -%}
  {%- endfor -%}
{%- endmacro %}
