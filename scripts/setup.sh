#!/usr/bin/env bash
# Installs what building and testing need, skipping what is already there:
# Debian packages, cargo-pgrx, pgrx's PostgreSQL registration, and the Python venvs with dbt.
source "$(dirname "$0")/lib.sh"

APT_PACKAGES=(postgresql-15 postgresql-server-dev-15 libclang-dev clang sudo make python3-venv)
missing=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if ((${#missing[@]})); then
    say "apt: installing ${missing[*]}"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${missing[@]}"
else
    say "apt: all packages present"
fi
# Debian's postgresql package starts a main cluster; it is not ours and not needed.
if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then
    pg_lsclusters -h | awk '$4=="online"{print $1, $2}' | while read -r ver name; do
        pg_ctlcluster "$ver" "$name" stop || true
    done
fi

if [[ "$(cargo pgrx --version 2>/dev/null || true)" != *"${PGRX_VERSION}"* ]]; then
    say "cargo-pgrx ${PGRX_VERSION}: installing (about 6 minutes)"
    cargo install cargo-pgrx --version "${PGRX_VERSION}" --locked
else
    say "cargo-pgrx ${PGRX_VERSION}: present"
fi

if ! grep -qs "pg${PG_MAJOR}" "${PGRX_HOME:-$HOME/.pgrx}/config.toml"; then
    say "pgrx: registering PostgreSQL ${PG_MAJOR}"
    cargo pgrx init "--pg${PG_MAJOR}" "${PG_CONFIG}"
fi

# Python venvs with pinned dbt (one per tested dbt version), rebuilt only when their
# requirements file changes.
"${ROOT}/scripts/dbt_venvs.sh"
