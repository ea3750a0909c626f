{#- pgstream_apply_constraints: an enforced contract's constraints on a stream table, idempotently. -#}
{#
  pgstream_apply_constraints(relation)

  When the model's contract is enforced, applies the constraints PostgreSQL can
  enforce on a table, from the columns' `constraints` and the model's:
  not_null (SET NOT NULL), check, unique, primary_key, foreign_key (`expression`, or
  dbt 1.9's `to` / `to_columns`). Each but not_null is a table constraint named as
  configured, or `pgs_con_<md5 of table, type, columns, expression>`; unique,
  primary key and foreign key constraints are DEFERRABLE INITIALLY IMMEDIATE (checked
  per statement: a refresh that swaps two keys is valid); it is added when missing, and `pgs_con_*` constraints the config no longer lists are dropped.
  `custom` constraints are not applied (a warning says so). A refresh that would
  violate a constraint fails with the constraint's error and applies nothing; data
  already violating one fails the model's run (its transaction rolls back).
  A not_null removed from the config stays until the stream table is recreated.

  Args:
    relation (Relation): the stream table
#}
{% macro pgstream_apply_constraints(relation) -%}
  {{ return(adapter.dispatch('pgstream_apply_constraints', 'dbt_pgstream')(relation)) }}
{%- endmacro %}

{% macro default__pgstream_apply_constraints(relation) -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('pgstream_apply_constraints') }}
{%- endmacro %}

{% macro postgres__pgstream_apply_constraints(relation) -%}
  {#- dbt run --empty leaves an existing stream table exactly as it is (and a new one is made
      without rows: its constraints come with the next normal run). -#}
  {%- if not execute or not config.get('contract').enforced
        or (flags.EMPTY is defined and flags.EMPTY) -%}
    {{ return(none) }}
  {%- endif -%}
  {%- set relation_oid = "pg_catalog.to_regclass(pg_catalog.format('%I.%I', "
        ~ dbt_pgstream.pgstream_sql_literal(relation.schema) ~ ", "
        ~ dbt_pgstream.pgstream_sql_literal(relation.identifier) ~ "))" -%}
  {#- (type, columns, expression, name, to, to_columns) of every constraint, column ones first. -#}
  {%- set declared = [] -%}
  {%- for column in model['columns'].values() -%}
    {%- for c in column.get('constraints') or [] -%}
      {%- do declared.append({'type': c['type'], 'columns': [column['name']], 'expression': c.get('expression'),
                              'name': c.get('name'), 'to': c.get('to'), 'to_columns': c.get('to_columns') or []}) -%}
    {%- endfor -%}
  {%- endfor -%}
  {%- for c in model.get('constraints') or [] -%}
    {%- do declared.append({'type': c['type'], 'columns': c.get('columns') or [], 'expression': c.get('expression'),
                            'name': c.get('name'), 'to': c.get('to'), 'to_columns': c.get('to_columns') or []}) -%}
  {%- endfor -%}
  {#- Checked at the end of each statement, not row by row: a refresh that swaps two keys in one
      statement is valid. -#}
  {%- set checked_per_statement = ' deferrable initially immediate' -%}
  {%- set wanted = [] -%}
  {%- for c in declared -%}
    {%- set kind = c['type'] | string | lower -%}
    {%- set columns = c['columns'] | map('string') | map('replace', '"', '""') | list -%}
    {%- set column_list = '"' ~ (columns | join('", "')) ~ '"' -%}
    {%- if kind == 'not_null' -%}
      {%- for column in columns -%}
        {%- call statement('pgstream_not_null') -%}
          alter table {{ relation }} alter column "{{ column }}" set not null
        {%- endcall -%}
      {%- endfor -%}
    {%- elif kind in ['check', 'unique', 'primary_key', 'foreign_key'] -%}
      {%- if kind == 'check' -%}
        {%- set body = 'check (' ~ c['expression'] ~ ')' -%}
      {%- elif kind == 'unique' -%}
        {%- set body = 'unique (' ~ column_list ~ ')' ~ checked_per_statement -%}
      {%- elif kind == 'primary_key' -%}
        {%- set body = 'primary key (' ~ column_list ~ ')' ~ checked_per_statement -%}
      {%- elif c['to'] -%}
        {%- set to_columns = c['to_columns'] | map('string') | map('replace', '"', '""') | list -%}
        {%- set body = 'foreign key (' ~ column_list ~ ') references ' ~ c['to'] ~ ' ("' ~ (to_columns | join('", "')) ~ '")' ~ checked_per_statement -%}
      {%- else -%}
        {%- set body = 'foreign key (' ~ column_list ~ ') references ' ~ c['expression'] ~ checked_per_statement -%}
      {%- endif -%}
      {%- set name = c['name'] or ('pgs_con_' ~ local_md5([relation.schema, relation.identifier, body] | join('|'))) -%}
      {%- do wanted.append(name) -%}
      {%- set exists_sql -%}
        select count(*) as n from pg_constraint
        where conrelid = {{ relation_oid }}
          and conname = {{ dbt_pgstream.pgstream_sql_literal(name) }}
      {%- endset -%}
      {%- if run_query(exists_sql).rows[0]['n'] == 0 -%}
        {%- call statement('pgstream_constraint') -%}
          alter table {{ relation }} add constraint {{ dbt_pgstream.pgstream_quote_ident(name) }} {{ body }}
        {%- endcall -%}
      {%- endif -%}
    {%- else -%}
      {%- do exceptions.warn("dbt_pgstream: model " ~ model.name ~ ": constraint type '" ~ kind ~ "' is not applied to stream tables (not_null, check, unique, primary_key and foreign_key are)") -%}
    {%- endif -%}
  {%- endfor -%}
  {%- set stale_sql -%}
    select conname from pg_constraint
    where conrelid = {{ relation_oid }}
      and conname like 'pgs\_con\_%'
  {%- endset -%}
  {%- for row in run_query(stale_sql).rows -%}
    {%- if row['conname'] not in wanted -%}
      {%- call statement('pgstream_drop_constraint') -%}
        alter table {{ relation }} drop constraint if exists {{ dbt_pgstream.pgstream_quote_ident(row['conname']) }}
      {%- endcall -%}
    {%- endif -%}
  {%- endfor -%}
{%- endmacro %}
