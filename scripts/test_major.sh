#!/usr/bin/env bash
# The end-to-end tests and the dbt 1.11 integration flow on another PostgreSQL major (16 or 18,
# the PyPI wheels' servers in .pg/): builds and installs the extension for it, starts its own
# throwaway cluster (.cluster-<major>, port 554<major>), runs, stops. `make test` runs this for
# 18 and 16 after every tier on 15; `PG_MAJOR=<major> make test` runs every tier on one major.
set -euo pipefail
major="${1:?usage: $0 16|18 [pytest args]}"
shift
export PG_MAJOR="${major}"
export CLUSTER_DIR="$(cd "$(dirname "$0")/.." && pwd)/.cluster-${major}"
export PGPORT="554${major}"
source "$(dirname "$0")/lib.sh"

"${ROOT}/scripts/install.sh"
trap '"${ROOT}/scripts/cluster.sh" stop' EXIT
"${ROOT}/scripts/cluster.sh" start
say "PostgreSQL ${major}: end-to-end tests"
PG_BIN="${PG_BIN}" "${VENV}/bin/python" -m pytest -q -p no:cacheprovider "${ROOT}/tests/e2e" "$@"
say "PostgreSQL ${major}: the dbt integration flow on dbt 1.11"
"${ROOT}/scripts/dbt_integration.sh" 1.11
