{#- pgstream_parse_name: a stream table name (text or Relation) as {schema, identifier}, schema-aware. -#}
{#
  pgstream_parse_name(name, default_schema=none)

  Splits a stream table name into its schema and identifier, with PostgreSQL's
  rules: `schema.name`, quoted parts keep case and symbols (`"My Schema"."My Table"`,
  `""` inside quotes is one `"`), unquoted parts fold to lower case. An unqualified
  name is in `default_schema`, which defaults to the target schema (not search_path:
  dbt puts models in the target schema). A three-part name must name the target
  database. A dbt Relation (e.g. from ref()) is taken as it is, except that a part its
  quote policy leaves unquoted folds to lower case (as dbt's unquoted SQL would).

  Returns: {"schema": str, "identifier": str}

  Args:
    name (str|Relation): the name to split
    default_schema (str): schema for an unqualified name (default: target.schema)
#}
{% macro pgstream_parse_name(name, default_schema=none) -%}
  {%- set default_schema = default_schema or target.schema -%}
  {%- if name is not string and name.identifier is defined -%}
    {#- A Relation: parts dbt would not quote (quoting config false) fold to lower case, as PostgreSQL folds them. -#}
    {%- set policy = name.quote_policy -%}
    {%- set schema = name.schema or default_schema -%}
    {%- set identifier = name.identifier -%}
    {%- if policy is defined and policy.schema is sameas false -%}{%- set schema = schema | lower -%}{%- endif -%}
    {%- if policy is defined and policy.identifier is sameas false -%}{%- set identifier = identifier | lower -%}{%- endif -%}
    {{ return({'schema': schema, 'identifier': identifier}) }}
  {%- endif -%}
  {%- if name is none or (name | string | trim) == '' -%}
    {{ exceptions.raise_compiler_error("dbt_pgstream: a stream table name is required, got '" ~ name ~ "'") }}
  {%- endif -%}
  {%- set text = name | string | trim -%}
  {%- set ns = namespace(parts=[], cur='', quoted=false, had_quote=false, skip=false) -%}
  {%- for ch in text -%}
    {%- if ns.skip -%}
      {%- set ns.skip = false -%}
    {%- elif ns.quoted -%}
      {%- if ch == '"' and loop.nextitem == '"' -%}
        {%- set ns.cur = ns.cur ~ '"' -%}
        {%- set ns.skip = true -%}
      {%- elif ch == '"' -%}
        {%- set ns.quoted = false -%}
      {%- else -%}
        {%- set ns.cur = ns.cur ~ ch -%}
      {%- endif -%}
    {%- elif ch == '"' -%}
      {%- set ns.quoted = true -%}
      {%- set ns.had_quote = true -%}
    {%- elif ch == '.' -%}
      {%- if ns.cur == '' -%}
        {{ exceptions.raise_compiler_error("dbt_pgstream: empty part in stream table name '" ~ text ~ "'") }}
      {%- endif -%}
      {%- set ns.parts = ns.parts + [ns.cur] -%}
      {%- set ns.cur = '' -%}
    {%- else -%}
      {%- set ns.cur = ns.cur ~ ch.lower() -%}
    {%- endif -%}
  {%- endfor -%}
  {%- if ns.quoted -%}
    {{ exceptions.raise_compiler_error("dbt_pgstream: unterminated quoted identifier in stream table name '" ~ text ~ "'") }}
  {%- endif -%}
  {%- if ns.cur == '' -%}
    {{ exceptions.raise_compiler_error("dbt_pgstream: empty part in stream table name '" ~ text ~ "'") }}
  {%- endif -%}
  {%- set parts = ns.parts + [ns.cur] -%}
  {%- if parts | length == 3 -%}
    {%- if parts[0] != target.database and parts[0] != (target.database | lower) -%}
      {{ exceptions.raise_compiler_error("dbt_pgstream: stream table name '" ~ text ~ "' names database '" ~ parts[0] ~ "', but the target database is '" ~ target.database ~ "'") }}
    {%- endif -%}
    {%- set parts = parts[1:] -%}
  {%- endif -%}
  {%- if parts | length == 1 -%}
    {{ return({'schema': default_schema, 'identifier': parts[0]}) }}
  {%- elif parts | length == 2 -%}
    {{ return({'schema': parts[0], 'identifier': parts[1]}) }}
  {%- else -%}
    {{ exceptions.raise_compiler_error("dbt_pgstream: stream table name '" ~ text ~ "' has too many parts; use name or schema.name") }}
  {%- endif -%}
{%- endmacro %}
