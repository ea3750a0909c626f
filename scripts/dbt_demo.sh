#!/usr/bin/env bash
# Runs the dbt-pgstream integration project end to end once with dbt 1.11 against the running cluster
# (PGHOST/PGPORT/PGUSER): deps, seed, run, rerun, test, new rows + refresh operation; prints the
# materialization's log lines and the stream table's rows.
source "$(dirname "$0")/lib.sh"

DB="dbt_pgstream_demo"
SCHEMA="analytics"
"${ROOT}/scripts/dbt_venvs.sh" 1.11 >/dev/null
DBT="${ROOT}/.venvs/dbt-1.11/bin/dbt"

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
project="${work}/integration_tests"
cp -r "${ROOT}/dbt-pgstream/integration_tests" "${project}"
rm -rf "${project}/target" "${project}/dbt_packages" "${project}/logs" "${project}/package-lock.yml"
printf 'packages:\n  - local: %s\n' "${ROOT}/dbt-pgstream" >"${project}/packages.yml"

export PGDATABASE="${DB}" DBT_PGSTREAM_SCHEMA="${SCHEMA}" DBT_SEND_ANONYMOUS_USAGE_STATS=false
export DBT_PROFILES_DIR="${project}"
PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres \
    -c "DROP DATABASE IF EXISTS ${DB} WITH (FORCE)" -c "CREATE DATABASE ${DB}" \
    -c "DO \$\$ BEGIN CREATE ROLE pgstream_it_reader NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$"
psql -X -q -v ON_ERROR_STOP=1 -c "CREATE EXTENSION pg_stream_dbt"

# Runs one dbt command; shows the lines that tell what happened, and the whole log on failure.
dbt_step() {
    say "dbt $*"
    local out="${work}/dbt.out"
    if ! (cd "${project}" && "${DBT}" "$@" --no-use-colors) >"${out}" 2>&1; then
        cat "${out}"
        echo "dbt_demo: dbt $* failed" >&2
        exit 1
    fi
    grep -E 'pg_stream: |assert_wrappers|PASS=|Done\.|WARN ' "${out}" | sed -E 's/^[0-9:]+ +/    /' || true
}

dbt_step deps
dbt_step seed
dbt_step run
dbt_step run            # nothing changed: every stream table is "unchanged"
dbt_step test
echo "    (the one WARN is expected: stream_table_healthy on not_a_stream_table, a plain view, has severity warn)"
say "psql: SELECT * FROM ${SCHEMA}.order_totals"
psql -X -c "SELECT customer_id, total_amount, order_count FROM ${SCHEMA}.order_totals ORDER BY customer_id"
say "psql: two new orders (customer 104 is new)"
psql -X -q -c "INSERT INTO ${SCHEMA}.raw_orders VALUES (11, 104, 150.00, '2026-01-19 10:00'), (12, 100, 1.00, '2026-01-19 11:00')"
dbt_step run-operation pgstream_refresh --args '{model_name: order_totals}'
dbt_step run-operation refresh_all_stream_tables
psql -X -c "SELECT customer_id, total_amount, order_count FROM ${SCHEMA}.order_totals ORDER BY customer_id"
psql -X -c "SELECT pgs_schema, pgs_name, schedule, refresh_mode, status, total_refreshes, stale
            FROM pgstream.pg_stat_stream_tables ORDER BY pgs_schema, pgs_name"
dbt_step test
say "dbt demo finished (database ${DB} kept for a look: psql -d ${DB})"
