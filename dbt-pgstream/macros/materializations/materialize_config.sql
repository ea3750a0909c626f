{#- pgstream_materialize_config: the model's config as the jsonb object materialize() takes. -#}
{#
  pgstream_materialize_config()

  Builds the config object for pgstream_dbt.materialize() from the current model's
  config (call it inside a materialization): schedule (default '1m'), refresh_mode
  (default 'DIFFERENTIAL'), initialize (default true), full_refresh (dbt's
  should_full_refresh(): `--full-refresh` or the model's `full_refresh` config),
  on_configuration_change (default 'apply'), status (default: keep), empty (dbt's
  `--empty` flag: the SQL's refs and sources are emptied subqueries), refresh_on_run
  (default false: an unchanged stream table is refreshed in the same call), partition_by
  (default none: e.g. 'RANGE (ordered_on)', a partitioned stream table),
  distribution_column / reference_table (default none: on a Citus coordinator, a stream
  table distributed by that column, or a reference table). The database
  validates every value and names the key of a bad one.
#}
{% macro pgstream_materialize_config() -%}
  {{ return(adapter.dispatch('pgstream_materialize_config', 'dbt_pgstream')()) }}
{%- endmacro %}

{% macro default__pgstream_materialize_config() -%}
  {%- set on_change = config.get('on_configuration_change') -%}
  {%- set status = config.get('status') -%}
  {%- set initialize = config.get('initialize') -%}
  {%- set refresh_on_run = config.get('refresh_on_run') -%}
  {{ return({
      'schedule': config.get('schedule') or '1m',
      'refresh_mode': config.get('refresh_mode') or 'DIFFERENTIAL',
      'initialize': true if initialize is none else initialize,
      'full_refresh': (should_full_refresh() or false),
      'on_configuration_change': ((on_change | string) if on_change is not none else 'apply'),
      'status': ((status | string) if status is not none else none),
      'empty': (true if (flags.EMPTY is defined and flags.EMPTY) else false),
      'refresh_on_run': (false if refresh_on_run is none else refresh_on_run),
      'partition_by': config.get('partition_by'),
      'distribution_column': config.get('distribution_column'),
      'reference_table': config.get('reference_table'),
  }) }}
{%- endmacro %}

{% macro postgres__pgstream_materialize_config() -%}
  {{ return(dbt_pgstream.default__pgstream_materialize_config()) }}
{%- endmacro %}
