-- Grants, indexes, persisted docs and hooks on a stream table.
{{ config(
    materialized='stream_table',
    schedule='20m',
    refresh_mode='DIFFERENTIAL',
    grants={'select': ['pgstream_it_reader']},
    indexes=[{'columns': ['customer_id'], 'unique': true}, {'columns': ['last_order_at']}],
    persist_docs={'relation': true, 'columns': true},
    pre_hook="create table if not exists {{ target.schema }}.hook_log (model text, hook text, at timestamptz default now())",
    post_hook=[
        "insert into {{ target.schema }}.hook_log (model, hook) values ('{{ this.name }}', 'post inside')",
        {"sql": "insert into {{ target.schema }}.hook_log (model, hook) values ('{{ this.name }}', 'post outside')", "transaction": false},
    ]
) }}

SELECT customer_id, MAX(created_at) AS last_order_at, COUNT(*) AS orders
FROM {{ ref('raw_orders') }}
GROUP BY customer_id
