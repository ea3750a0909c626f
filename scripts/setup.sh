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

# PostgreSQL 16 and 18 from PyPI wheels into .pg/16 and .pg/18 (the 18 build is compile-checked
# by make test; see scripts/pg_majors.sh).
"${ROOT}/scripts/pg_majors.sh" 16 18
# pgrx keeps one config for every major it knows, rewritten by each init: name them all at once.
pgrx_config="${PGRX_HOME:-$HOME/.pgrx}/config.toml"
if ! { grep -qs '^pg15 = "/usr/lib/postgresql/15/bin/pg_config"' "${pgrx_config}" \
        && grep -qs "^pg16 = \"${ROOT}/.pg/16/bin/pg_config\"" "${pgrx_config}" \
        && grep -qs "^pg18 = \"${ROOT}/.pg/18/bin/pg_config\"" "${pgrx_config}"; }; then
    say "pgrx: registering PostgreSQL 15, 16 and 18"
    cargo pgrx init --pg15 /usr/lib/postgresql/15/bin/pg_config \
        --pg16 "${ROOT}/.pg/16/bin/pg_config" --pg18 "${ROOT}/.pg/18/bin/pg_config"
fi

# Python venvs with pinned dbt (one per tested dbt version), rebuilt only when their
# requirements file changes.
"${ROOT}/scripts/dbt_venvs.sh"
