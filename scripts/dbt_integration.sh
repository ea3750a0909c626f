#!/usr/bin/env bash
# Runs the dbt-pgstream integration flow (dbt-pgstream/integration_tests/test_flow.py) once per dbt
# version, each in its own fresh database on the running cluster (PGHOST/PGPORT/PGUSER), and prints
# one summary line per version; exits non-zero when any version fails.
# Usage: scripts/dbt_integration.sh [1.8 1.9 1.10 1.11]   (default: every requirements file)
source "$(dirname "$0")/lib.sh"

REQ_DIR="${ROOT}/dbt-pgstream/integration_tests/requirements"
OUT_DIR="${ROOT}/target/dbt-integration"
READER_ROLE="pgstream_it_reader"   # granted to by the customer_activity model

versions=("$@")
if ((${#versions[@]} == 0)); then
    while read -r f; do
        v="$(basename "$f" .txt)"
        versions+=("${v#dbt-}")
    done < <(ls "${REQ_DIR}"/dbt-*.txt | sort -V)
fi

"${ROOT}/scripts/dbt_venvs.sh" "${versions[@]}"
mkdir -p "${OUT_DIR}"

psql_admin() { PGOPTIONS="-c client_min_messages=warning" psql -X -q -v ON_ERROR_STOP=1 -d postgres "$@"; }
psql_admin -c "DO \$\$ BEGIN CREATE ROLE ${READER_ROLE} NOLOGIN; EXCEPTION WHEN duplicate_object THEN NULL; END \$\$" \
    || { echo "dbt_integration: cannot reach PostgreSQL at ${PGHOST}:${PGPORT} as ${PGUSER}" >&2; exit 1; }

summaries=()
failed=0
for v in "${versions[@]}"; do
    venv="${ROOT}/.venvs/dbt-${v}"
    db="dbt_pgstream_it_${v//./_}"
    log="${OUT_DIR}/dbt-${v}.log"
    say "dbt ${v}: integration flow in database ${db} (log ${log#"${ROOT}/"})"
    psql_admin -c "DROP DATABASE IF EXISTS ${db} WITH (FORCE)" -c "CREATE DATABASE ${db}"
    psql -X -q -v ON_ERROR_STOP=1 -d "${db}" -c "CREATE EXTENSION pg_stream_dbt"
    versions_text="$("${venv}/bin/python" -c 'import importlib.metadata as m; print("dbt-core", m.version("dbt-core") + ", dbt-postgres", m.version("dbt-postgres"))')"
    start=${SECONDS}
    set +e
    PGDATABASE="${db}" DBT_PGSTREAM_SCHEMA="pgstream_it" DBT_SEND_ANONYMOUS_USAGE_STATS=false \
        "${venv}/bin/python" -m pytest -p no:cacheprovider -q -rfE -W ignore::DeprecationWarning --basetemp "${OUT_DIR}/tmp-${v}" \
        "${ROOT}/dbt-pgstream/integration_tests/test_flow.py" >"${log}" 2>&1
    rc=$?
    set -e
    result="$(grep -E '^[0-9]+ (passed|failed)|^(=+ )?[0-9]+ (passed|failed)|no tests ran|error' "${log}" | tail -1 | sed 's/=//g; s/^ *//; s/ *$//')"
    if ((rc == 0)); then
        summaries+=("dbt ${v} (${versions_text}): PASS - ${result} ($((SECONDS - start))s)")
    else
        failed=1
        summaries+=("dbt ${v} (${versions_text}): FAIL - ${result:-pytest exit ${rc}} ($((SECONDS - start))s); see ${log#"${ROOT}/"}")
        grep -E '^FAILED|^ERROR' "${log}" | sed 's/^/    /' || true
    fi
done

say "dbt integration summary"
printf '%s\n' "${summaries[@]}"
exit "${failed}"
