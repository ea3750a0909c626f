#!/usr/bin/env bash
# The README's test command: sets up what is missing, then runs every tier:
# lint, unit (cargo test), in-database (cargo pgrx test), end-to-end (pytest on a throwaway
# cluster), the dbt integration flow on every pinned dbt version, the benchmark smoke, and
# smoke subsets on PostgreSQL 18 and 16 and on Citus (their full runs: make test-majors,
# make test-citus).
source "$(dirname "$0")/lib.sh"
cd "${ROOT}"
"${ROOT}/scripts/setup.sh"

say "lint: cargo fmt --check, cargo clippy -D warnings"
cargo fmt --all --check
cargo clippy --quiet -p pgstream-core --all-targets -- -D warnings
cargo clippy --quiet --no-default-features --features "pg${PG_MAJOR}" --all-targets -- -D warnings

# PostgreSQL 18 (wheel headers): the extension compiles (C shims with clang, see pg_majors.sh).
say "lint: compile check against PostgreSQL 18"
CC=clang cargo check --quiet --no-default-features --features pg18

say "tier 1: unit tests (no PostgreSQL): the pure core crate, then the extension's own"
cargo test --quiet -p pgstream-core
cargo test --quiet --no-default-features --features "pg${PG_MAJOR}" -- --skip pg_tests::

say "tier 2: in-database tests (cargo pgrx test pg${PG_MAJOR})"
install -d -o postgres -g postgres "${ROOT}/.pgrx-test-data-${PG_MAJOR}"
cargo pgrx test "pg${PG_MAJOR}" --runas postgres --pgdata "${ROOT}/.pgrx-test-data-${PG_MAJOR}" 2>&1 \
    | grep -E '^test |test result|panicked|error' || { echo "cargo pgrx test failed" >&2; exit 1; }

# cargo pgrx test installed its test build; put the real one back before the cluster starts.
"${ROOT}/scripts/install.sh"

say "tier 3: end-to-end tests against a throwaway cluster"
trap '"${ROOT}/scripts/cluster.sh" stop' EXIT
"${ROOT}/scripts/cluster.sh" start
PG_BIN="${PG_BIN}" "${VENV}/bin/python" -m pytest -q -p no:cacheprovider "${ROOT}/tests/e2e" "$@"

say "tier 4: the dbt-pgstream integration flow on dbt 1.8, 1.9, 1.10 and 1.11"
"${ROOT}/scripts/dbt_integration.sh"

say "tier 5: benchmark smoke (bench/refresh --smoke, bench/parallel --smoke: every measurement runs, numbers not judged)"
"${ROOT}/bench/refresh" --smoke
"${ROOT}/bench/parallel" --smoke
if [[ "${PG_MAJOR}" == 15 && -z "${SKIP_OTHER_MAJORS:-}" ]]; then
    say "tier 6: PostgreSQL 18 and 16, smoke (a subset of the end-to-end tests and the dbt 1.11 flow on each; make test-majors runs them in full; SKIP_OTHER_MAJORS=1 skips)"
    SKIP_SETUP=1 "${ROOT}/scripts/test_major.sh" 18 --smoke
    SKIP_SETUP=1 "${ROOT}/scripts/test_major.sh" 16 --smoke
fi
tarball="${CITUS_TARBALL:-${ROOT}/../shared/citus/citus-14.0.1.tar.gz}"
if [[ -n "${SKIP_CITUS:-}" ]]; then
    say "tier 7: SKIPPED - SKIP_CITUS is set"
elif [[ ! -f "${tarball}" ]]; then
    say "tier 7: SKIPPED - no Citus source tarball at ${tarball} (set CITUS_TARBALL)"
else
    say "tier 7: Citus on PostgreSQL 18, smoke (four of tests/citus on a coordinator and two workers; make test-citus runs them all; SKIP_CITUS=1 skips)"
    CITUS_TARBALL="${tarball}" SKIP_SETUP=1 "${ROOT}/scripts/test_citus.sh" --smoke
fi
say "all tiers passed"
