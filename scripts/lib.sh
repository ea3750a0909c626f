# Shared settings and helpers for the scripts in this directory (sourced, not run).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
PG_MAJOR="${PG_MAJOR:-15}"
# 15 is Debian's; 16 and 18 are the PyPI wheels' server trees unpacked by scripts/pg_majors.sh.
# Another major (17) works from Debian's packages if installed, or a tree in .pg/<major>.
case "${PG_MAJOR}" in
    15 | 16 | 17 | 18)
        if [[ -x "/usr/lib/postgresql/${PG_MAJOR}/bin/pg_config" && ! -d "${ROOT}/.pg/${PG_MAJOR}" ]]; then
            PG_BIN="/usr/lib/postgresql/${PG_MAJOR}/bin"
        else
            PG_BIN="${ROOT}/.pg/${PG_MAJOR}/bin"
            # The 18 wheel's CFLAGS name a GCC 14 option: C code built against it needs clang.
            export CC="${CC:-clang}"
        fi
        ;;
    *) echo "PG_MAJOR=${PG_MAJOR}: supported are 15 to 18" >&2; exit 2 ;;
esac
PG_CONFIG="${PG_BIN}/pg_config"
PGRX_VERSION="0.18.0"
# The throwaway cluster: project-local data dir, private port, run as the postgres OS user.
CLUSTER_DIR="${CLUSTER_DIR:-${ROOT}/.cluster}"
export PGHOST="${PGHOST_OVERRIDE:-127.0.0.1}"
export PGPORT="${PGPORT:-55415}"
export PGUSER="${PGUSER:-postgres}"
export PGDATABASE="${PGDATABASE:-postgres}"
# The Python venv the end-to-end tests use: dbt 1.11 with pytest (scripts/dbt_venvs.sh builds it).
VENV="${VENV:-${ROOT}/.venvs/dbt-1.11}"

say() { printf '\033[1m==> %s\033[0m\n' "$*"; }

as_postgres() {
    runuser -u postgres -- "$@"
}
