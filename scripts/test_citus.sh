#!/usr/bin/env bash
# The Citus tier (`make test-citus`): builds Citus 14.0.1 from the shared source tarball and this
# extension for PostgreSQL 18, starts a coordinator and two workers (scripts/citus.sh), runs
# tests/citus, stops the cluster.
#
#   scripts/test_citus.sh [--smoke] [pytest args]
#
# --smoke (tier 7 of `make test`): four of the tests, about 20 seconds instead of 4.5 minutes: FULL and
# DIFFERENTIAL stream tables over distributed and reference tables, a TRUNCATE of a distributed
# source, and stream tables that are Citus tables refreshed on the workers; not the oracle
# corpus, the concurrency and lifecycle tests (`make test-citus` runs them all).
set -euo pipefail
selection=()
if [[ "${1:-}" == "--smoke" ]]; then
    shift
    selection=(-k "full_stream_tables_over_distributed_and_reference_tables or differential_over_distributed_and_reference_tables or truncate_of_a_distributed_source or refreshed_differential_on_the_workers")
fi
export PG_MAJOR=18
source "$(dirname "$0")/lib.sh"
[[ -n "${SKIP_SETUP:-}" ]] || "${ROOT}/scripts/setup.sh"
"${ROOT}/scripts/pg_majors.sh" 18
"${ROOT}/scripts/citus.sh" build
"${ROOT}/scripts/install.sh"
trap '"${ROOT}/scripts/citus.sh" stop' EXIT
"${ROOT}/scripts/citus.sh" start
say "Citus: stream tables on a coordinator with two workers"
"${VENV}/bin/python" -m pytest -q -p no:cacheprovider "${ROOT}/tests/citus" "${selection[@]}" "$@"
