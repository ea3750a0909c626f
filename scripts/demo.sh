#!/usr/bin/env bash
# The README's main command: sets up what is missing, builds and installs the extension
# (release), starts a throwaway cluster, runs the psql example and the example dbt project end
# to end, and prints what they did.
source "$(dirname "$0")/lib.sh"
cd "${ROOT}"
"${ROOT}/scripts/setup.sh"
"${ROOT}/scripts/install.sh" --release
trap '"${ROOT}/scripts/cluster.sh" stop' EXIT
"${ROOT}/scripts/cluster.sh" start
say "demo 1/2: the engine from psql (examples/demo.sql)"
psql -X -v ON_ERROR_STOP=1 --echo-queries -f "${ROOT}/examples/demo.sql"
say "demo 2/2: the dbt project dbt-pgstream/integration_tests, end to end"
"${ROOT}/scripts/dbt_demo.sh"
say "demo finished"
