{#- The stream_table materialization: one pgstream_dbt.materialize() call makes the lifecycle decision. -#}
{#
  materialization stream_table (adapter postgres)

  Sends the compiled model SQL and its config to pgstream_dbt.materialize() in ONE
  statement; the database decides created | unchanged | altered | recreated under a
  per-name lock (normalized query hash, config diff) and says why. Around it, as
  dbt's table materialization does: pre-hooks (outside, then inside the
  transaction), indexes, post-hooks inside, grants, persist_docs, commit, post-hooks
  outside. Logs `pg_stream: <action> <schema.name> (<reason>)`; the result's
  warnings become dbt warnings.

  Config: schedule ('1m'), refresh_mode ('DIFFERENTIAL'), initialize (true),
  on_configuration_change ('apply'), status, refresh_on_run (false), plus dbt's
  grants, indexes, persist_docs, pre_hook/post_hook, full_refresh, sql_header and
  contract / constraints as the table materialization has them: an enforced
  contract is checked before anything changes, constraints are applied to the
  stream table (pgstream_apply_constraints). stream_table_name / stream_table_schema
  still work and warn: they are deprecated (dbt's alias / schema do it, and keep
  ref(), docs and lineage right).
#}
{% materialization stream_table, adapter='postgres' %}

  {%- set st_schema = config.get('stream_table_schema') or this.schema -%}
  {%- set st_name = config.get('stream_table_name') or this.identifier -%}
  {%- set target_relation = this.incorporate(path={'schema': st_schema, 'identifier': st_name}, type='table') -%}
  {%- set existing_relation = load_cached_relation(target_relation) -%}
  {%- set grant_config = config.get('grants') -%}
  {%- set st_config = dbt_pgstream.pgstream_materialize_config() -%}
  {%- set sql_header = config.get('sql_header', none) -%}
  {%- if config.get('stream_table_name') is not none or config.get('stream_table_schema') is not none -%}
    {%- do exceptions.warn("dbt_pgstream: model " ~ model.name ~ ": the configs stream_table_name / stream_table_schema are deprecated and will be removed in a later release; use dbt's alias / schema (ref(), docs and lineage then name the stream table)") -%}
  {%- endif -%}
  {#- An enforced contract is checked first: a mismatch fails the model and changes nothing. -#}
  {%- if config.get('contract').enforced -%}
    {%- do get_assert_columns_equivalent(sql) -%}
  {%- endif -%}

  {{ run_hooks(pre_hooks, inside_transaction=False) }}
  -- `BEGIN` happens here:
  {{ run_hooks(pre_hooks, inside_transaction=True) }}

  {%- if st_schema != this.schema -%}
    {%- do adapter.create_schema(target_relation) -%}
  {%- endif -%}

  {#- The lifecycle decision: this one statement. -#}
  {%- call statement('main', fetch_result=True) -%}
    {{ sql_header if sql_header is not none }}
    select pgstream_dbt.materialize(
      {{ dbt_pgstream.pgstream_sql_literal(dbt_pgstream.pgstream_qualified_name(target_relation)) }},
      {{ dbt_pgstream.pgstream_sql_literal(sql) }},
      {{ dbt_pgstream.pgstream_sql_literal(tojson(st_config)) }}::jsonb
    )::text as result
  {%- endcall -%}
  {%- set result = fromjson(load_result('main')['data'][0][0]) -%}
  {#- dbt's run line shows the action: `OK created sql stream_table model ... [UNCHANGED in 0.02s]`. -#}
  {%- do store_raw_result(name='main', message=result['action'] | upper, code=result['action'] | upper,
                          rows_affected=none) -%}

  {{ log("pg_stream: " ~ result['action'] ~ " " ~ result['stream_table'] ~ " (" ~ result['reason'] ~ ")", info=true) }}
  {%- for warning in result.get('warnings') or [] -%}
    {%- do exceptions.warn("pg_stream: " ~ warning) -%}
  {%- endfor -%}

  {%- do dbt_pgstream.pgstream_apply_indexes(target_relation, config.get('indexes')) -%}
  {%- do dbt_pgstream.pgstream_apply_constraints(target_relation) -%}

  {{ run_hooks(post_hooks, inside_transaction=True) }}

  {%- set should_revoke = should_revoke(existing_relation, full_refresh_mode=False) -%}
  {%- do apply_grants(target_relation, grant_config, should_revoke=should_revoke) -%}

  {%- do persist_docs(target_relation, model) -%}

  -- `COMMIT` happens here
  {{ adapter.commit() }}

  {{ run_hooks(post_hooks, inside_transaction=False) }}

  {#- A view or other relation that full_refresh replaced leaves the cache; dbt caches the returned table. -#}
  {%- if existing_relation is not none and existing_relation.type != 'table' -%}
    {%- do adapter.cache_dropped(existing_relation) -%}
  {%- endif -%}

  {{ return({'relations': [target_relation]}) }}

{% endmaterialization %}
