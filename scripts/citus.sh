#!/usr/bin/env bash
# The Citus scale-out test cluster on PostgreSQL 18: `citus.sh build` (Citus 14 from the source
# tarball in shared/citus into .pg/18), `start` (coordinator + two workers), `stop`, `psql`.
export PG_MAJOR=18
source "$(dirname "$0")/lib.sh"

TARBALL="${CITUS_TARBALL:-${ROOT}/../shared/citus/citus-14.0.1.tar.gz}"
BUILD_DIR="${ROOT}/.pg/citus-build"
STAMP="${ROOT}/.pg/18/citus.stamp"
CITUS_DIR="${ROOT}/.cluster-citus"
CITUS_PORT="${CITUS_PORT:-55480}"
NODES=(coord w1 w2)
APT_DEPS=(libcurl4-openssl-dev liblz4-dev libzstd-dev libkrb5-dev)

# The port of a node: the coordinator on CITUS_PORT, worker N on CITUS_PORT + N.
port_of() {
    case "$1" in
        coord) echo "${CITUS_PORT}" ;;
        w[0-9]) echo $((CITUS_PORT + ${1#w})) ;;
        *) echo "citus: unknown node '$1' (coord, w1, w2)" >&2; exit 2 ;;
    esac
}

build() {
    [[ -f "${TARBALL}" ]] || { echo "citus: no tarball at ${TARBALL}" >&2; exit 1; }
    local sha
    sha="$(sha256sum "${TARBALL}" | cut -d' ' -f1)"
    if [[ -f "${STAMP}" && "$(cat "${STAMP}")" == "${sha}" && -f "$("${PG_CONFIG}" --pkglibdir)/citus.so" ]]; then
        say "citus: already installed into .pg/18 ($(basename "${TARBALL}"))"
        return
    fi
    local missing=()
    for pkg in "${APT_DEPS[@]}"; do
        dpkg-query -W -f='${Status}' "${pkg}" 2>/dev/null | grep -q 'install ok installed' || missing+=("${pkg}")
    done
    if ((${#missing[@]})); then
        say "citus: installing ${missing[*]}"
        apt-get update -qq && apt-get install -y -qq "${missing[@]}" >/dev/null
    fi
    say "citus: building $(basename "${TARBALL}") against ${PG_CONFIG} (log ${BUILD_DIR}/build.log)"
    rm -rf "${BUILD_DIR}"
    mkdir -p "${BUILD_DIR}"
    tar xzf "${TARBALL}" -C "${BUILD_DIR}"
    local src log="${BUILD_DIR}/build.log"
    src="$(find "${BUILD_DIR}" -mindepth 1 -maxdepth 1 -type d -name 'citus-*' | head -1)"
    # The 18 tree's CFLAGS name a GCC 14 option: CC=clang (lib.sh exports it) for configure and make.
    if ! (cd "${src}" && umask 022 && ./configure PG_CONFIG="${PG_CONFIG}" CC="${CC}" &&
            make -j2 CC="${CC}" && make install CC="${CC}") >"${log}" 2>&1; then
        tail -40 "${log}" >&2
        echo "citus: build failed; full log in ${log}" >&2
        exit 1
    fi
    echo "${sha}" >"${STAMP}"
    say "citus: installed into .pg/18"
}

start_node() {
    local node="$1" port data="${CITUS_DIR}/$1/data" log="${CITUS_DIR}/$1/server.log" tries=0
    port="$(port_of "${node}")"
    install -d -o postgres -g postgres "${CITUS_DIR}/${node}"
    as_postgres "${PG_BIN}/initdb" -D "${data}" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"${CITUS_DIR}/${node}/initdb.log"
    cat >>"${data}/postgresql.conf" <<CONF
port = ${port}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${CITUS_DIR}/${node}'
shared_preload_libraries = 'citus,pg_stream_dbt'
max_worker_processes = 32
log_min_messages = info
fsync = off
wal_level = logical
pgstream.min_schedule_seconds = 1
pgstream.scheduler_interval_ms = 200
CONF
    # As in cluster.sh: a port of a moment ago may still be in TIME_WAIT; retry for a minute.
    until as_postgres env -u RUST_LIB_BACKTRACE RUST_BACKTRACE=1 "${PG_BIN}/pg_ctl" -D "${data}" \
            -l "${log}" -w start >/dev/null; do
        if ((++tries > 30)) || ! grep -q "Address already in use" "${log}"; then
            echo "citus: could not start ${node}; see ${log}" >&2
            exit 1
        fi
        sleep 2
    done
    node_psql "${node}" -c "CREATE EXTENSION citus" >/dev/null
}

node_psql() {
    local node="$1"
    shift
    "${PG_BIN}/psql" -X -q -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$(port_of "${node}")" -U postgres -d postgres "$@"
}

start() {
    [[ -f "${STAMP}" ]] || { echo "citus: not built; run $0 build first" >&2; exit 1; }
    stop
    rm -rf "${CITUS_DIR}"
    install -d -o postgres -g postgres "${CITUS_DIR}"
    for node in "${NODES[@]}"; do
        start_node "${node}"
    done
    node_psql coord -c "SELECT citus_set_coordinator_host('127.0.0.1', ${CITUS_PORT})" >/dev/null
    for node in "${NODES[@]:1}"; do
        node_psql coord -c "SELECT citus_add_node('127.0.0.1', $(port_of "${node}"))" >/dev/null
    done
    say "citus: coordinator on 127.0.0.1:${CITUS_PORT}, workers on $(port_of w1) and $(port_of w2) (${CITUS_DIR})"
}

stop() {
    local node stopped=0
    for node in "${NODES[@]}"; do
        if [[ -f "${CITUS_DIR}/${node}/data/postmaster.pid" ]]; then
            as_postgres "${PG_BIN}/pg_ctl" -D "${CITUS_DIR}/${node}/data" -m fast -w stop >/dev/null || true
            stopped=1
        fi
    done
    ((stopped)) && say "citus: stopped" || true
}

case "${1:-}" in
    build) build ;;
    start) start ;;
    stop) stop ;;
    psql)
        shift
        node=coord
        [[ "${1:-}" =~ ^(coord|w[0-9])$ ]] && { node="$1"; shift; }
        node_psql "${node}" "$@"
        ;;
    *) echo "usage: $0 build|start|stop|psql [coord|w1|w2] [psql args]" >&2; exit 2 ;;
esac
