#!/usr/bin/env bash
# The Citus tier (`make test-citus`): builds Citus 14.0.1 from the shared source tarball and this
# extension for PostgreSQL 18, starts a coordinator and two workers (scripts/citus.sh), runs
# tests/citus, stops the cluster.
set -euo pipefail
export PG_MAJOR=18
source "$(dirname "$0")/lib.sh"
[[ -n "${SKIP_SETUP:-}" ]] || "${ROOT}/scripts/setup.sh"
"${ROOT}/scripts/pg_majors.sh" 18
"${ROOT}/scripts/citus.sh" build
"${ROOT}/scripts/install.sh"
trap '"${ROOT}/scripts/citus.sh" stop' EXIT
"${ROOT}/scripts/citus.sh" start
say "Citus: stream tables on a coordinator with two workers"
"${VENV}/bin/python" -m pytest -q -p no:cacheprovider "${ROOT}/tests/citus" "$@"
