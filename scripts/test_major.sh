#!/usr/bin/env bash
# The end-to-end tests and the dbt 1.11 integration flow on another PostgreSQL major (16 or 18,
# the PyPI wheels' servers in .pg/): builds and installs the extension for it, starts its own
# throwaway cluster (.cluster-<major>, port 554<major>), runs, stops. `make test-majors` runs
# this in full for 18 and 16; `make test` runs it with --smoke (below) after every tier on 15;
# `PG_MAJOR=<major> make test` runs every tier on one major.
#
#   scripts/test_major.sh 18|16 [--smoke] [pytest args]
#
# --smoke: every end-to-end file but the four slowest, whose behaviour does not depend on the
# major (the scheduler's timing, parallel refresh workers, the change-capture skip rules, TPC-H),
# of which a few tests stay (the server's restart and crash, a scheduled refresh, capture under
# replica mode and inside a refresh's own transaction); the oracle with 10 rounds (50 in full).
# About 2.5 minutes of tests instead of 6 on 2 cores.
set -euo pipefail
major="${1:?usage: $0 16|18 [--smoke] [pytest args]}"
shift
smoke=""
if [[ "${1:-}" == "--smoke" ]]; then
    smoke=1
    shift
fi
export PG_MAJOR="${major}"
export CLUSTER_DIR="$(cd "$(dirname "$0")/.." && pwd)/.cluster-${major}"
export PGPORT="554${major}"
source "$(dirname "$0")/lib.sh"

[[ -n "${SKIP_SETUP:-}" ]] || "${ROOT}/scripts/setup.sh"
"${ROOT}/scripts/install.sh"
trap '"${ROOT}/scripts/cluster.sh" stop' EXIT
"${ROOT}/scripts/cluster.sh" start
if [[ -n "${smoke}" ]]; then
    slow='test_(scheduler|parallel_refresh|change_capture|tpch)[.]py$'
    tests=()
    for f in "${ROOT}"/tests/e2e/test_*.py; do
        [[ "${f}" =~ ${slow} ]] || tests+=("${f}")
    done
    tests+=("${ROOT}/tests/e2e/test_scheduler.py::test_server_restart_and_crash_bring_the_scheduler_back"
            "${ROOT}/tests/e2e/test_scheduler.py::test_a_one_second_stream_table_refreshes_by_itself"
            "${ROOT}/tests/e2e/test_change_capture.py::test_changes_are_captured_under_replica_mode"
            "${ROOT}/tests/e2e/test_change_capture.py::test_writes_around_a_refresh_in_one_transaction_are_not_lost")
    say "PostgreSQL ${major}: end-to-end tests, smoke subset (scripts/test_major.sh ${major} runs them all)"
    PGS_ORACLE_ROUNDS="${PGS_ORACLE_ROUNDS:-10}" PG_BIN="${PG_BIN}" \
        "${VENV}/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" "$@"
else
    say "PostgreSQL ${major}: end-to-end tests"
    PG_BIN="${PG_BIN}" "${VENV}/bin/python" -m pytest -q -p no:cacheprovider "${ROOT}/tests/e2e" "$@"
fi
say "PostgreSQL ${major}: the dbt integration flow on dbt 1.11"
"${ROOT}/scripts/dbt_integration.sh" 1.11
