{#- pgstream_unsupported_adapter: the clear error a default__ implementation raises off PostgreSQL. -#}
{#
  pgstream_unsupported_adapter(macro_name)

  Raises a compiler error saying that `macro_name` needs the postgres adapter and the
  pg_stream_dbt extension. The default__ implementations of macros that talk to the
  pgstream schema call it; the postgres__ implementations do the work.

  Args:
    macro_name (str): the macro that was called
#}
{% macro pgstream_unsupported_adapter(macro_name) -%}
  {{ exceptions.raise_compiler_error("dbt_pgstream: " ~ macro_name ~ " needs the postgres adapter with the pg_stream_dbt extension; this target's adapter is '" ~ adapter.type() ~ "'") }}
{%- endmacro %}
