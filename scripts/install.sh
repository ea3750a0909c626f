#!/usr/bin/env bash
# Builds the extension and installs it into the system PostgreSQL (release with --release).
source "$(dirname "$0")/lib.sh"
cd "${ROOT}"
profile=()
[[ "${1:-}" == "--release" ]] && profile=(--release)
say "extension: building and installing pg_stream_dbt ${profile[*]:-(debug build)}"
mkdir -p "${ROOT}/target"
log="${ROOT}/target/install.log"
if ! cargo pgrx install "${profile[@]}" --pg-config "${PG_CONFIG}" \
        --no-default-features --features "pg${PG_MAJOR}" >"${log}" 2>&1; then
    tail -50 "${log}" >&2
    echo "install failed; full log in ${log}" >&2
    exit 1
fi
grep -E 'Installing|Copying|Finished' "${log}" | sed 's/^/    /' | tail -4
# Earlier versions' install scripts, for the upgrade test (tests/e2e/test_upgrade.py); the
# upgrade scripts themselves (sql/pg_stream_dbt--A--B.sql) are installed by cargo pgrx.
extdir="$("${PG_CONFIG}" --sharedir)/extension"
for old in "${ROOT}"/tests/upgrade/pg_stream_dbt--*.sql; do
    install -m 644 "${old}" "${extdir}/"
done
