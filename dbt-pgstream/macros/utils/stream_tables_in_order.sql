{#- pgstream_stream_tables_in_order: every stream table in the catalog, sources before their readers. -#}
{#
  pgstream_stream_tables_in_order()

  Lists every stream table in pgstream.pgs_stream_tables as Relations, ordered so
  that a stream table comes after every stream table it reads (from
  pgstream.pgs_dependencies rows with source_kind = 'stream table'); ties by schema
  and name. Refresh in this order; drop in the reverse. Empty at parse time.
#}
{% macro pgstream_stream_tables_in_order() -%}
  {{ return(adapter.dispatch('pgstream_stream_tables_in_order', 'dbt_pgstream')()) }}
{%- endmacro %}

{% macro default__pgstream_stream_tables_in_order() -%}
  {{ dbt_pgstream.pgstream_unsupported_adapter('pgstream_stream_tables_in_order') }}
{%- endmacro %}

{% macro postgres__pgstream_stream_tables_in_order() -%}
  {%- if not execute -%}
    {{ return([]) }}
  {%- endif -%}
  {%- set query -%}
    with recursive edges as (
        select d.pgs_id as reader, s.pgs_id as source
        from pgstream.pgs_dependencies d
        join pgstream.pgs_stream_tables s on s.pgs_relid = d.source_relid
        where d.source_kind = 'stream table' and s.pgs_id <> d.pgs_id
    ), depth(pgs_id, level) as (
        select pgs_id, 0 from pgstream.pgs_stream_tables
        union all
        select e.reader, d.level + 1
        from edges e join depth d on e.source = d.pgs_id
        where d.level < 1000
    )
    select st.pgs_schema, st.pgs_name, max(d.level) as level
    from depth d join pgstream.pgs_stream_tables st using (pgs_id)
    group by st.pgs_schema, st.pgs_name
    order by level, st.pgs_schema, st.pgs_name
  {%- endset -%}
  {%- set relations = [] -%}
  {%- for row in run_query(query).rows -%}
    {%- do relations.append(api.Relation.create(database=target.database, schema=row['pgs_schema'],
                                                identifier=row['pgs_name'], type='table')) -%}
  {%- endfor -%}
  {{ return(relations) }}
{%- endmacro %}
