#!/usr/bin/env bash
# The throwaway PostgreSQL cluster: `cluster.sh start` (fresh data dir, preloaded library,
# private port) and `cluster.sh stop`. Runs as the postgres OS user; PostgreSQL refuses root.
source "$(dirname "$0")/lib.sh"

start() {
    stop
    rm -rf "${CLUSTER_DIR}"
    install -d -o postgres -g postgres "${CLUSTER_DIR}"
    as_postgres "${PG_BIN}/initdb" -D "${CLUSTER_DIR}/data" -U postgres --auth=trust \
        --encoding=UTF8 --locale=C.UTF-8 >"${CLUSTER_DIR}/initdb.log"
    cat >>"${CLUSTER_DIR}/data/postgresql.conf" <<CONF
port = ${PGPORT}
listen_addresses = '127.0.0.1'
unix_socket_directories = '${CLUSTER_DIR}'
shared_preload_libraries = 'pg_stream_dbt'
max_worker_processes = 16
log_min_messages = info
fsync = off
pgstream.min_schedule_seconds = 1
pgstream.scheduler_interval_ms = 200
CONF
    # RUST_BACKTRACE=1 on purpose: errors must reach clients without a Rust backtrace even
    # where the server's environment asks for them (tests/e2e/test_errors.py checks).
    # The private ports lie in Linux's ephemeral range: a client connection of a moment ago may
    # still hold the port in TIME_WAIT. Retry for up to a minute when that is why start failed.
    local tries=0
    until as_postgres env -u RUST_LIB_BACKTRACE RUST_BACKTRACE=1 "${PG_BIN}/pg_ctl" -D "${CLUSTER_DIR}/data" \
            -l "${CLUSTER_DIR}/server.log" -w start >/dev/null; do
        if ((++tries > 30)) || ! grep -q "Address already in use" "${CLUSTER_DIR}/server.log"; then
            echo "cluster: could not start PostgreSQL ${PG_MAJOR}; see ${CLUSTER_DIR}/server.log" >&2
            exit 1
        fi
        sleep 2
    done
    say "cluster: PostgreSQL ${PG_MAJOR} on 127.0.0.1:${PGPORT} (data ${CLUSTER_DIR}/data, log ${CLUSTER_DIR}/server.log)"
}

stop() {
    if [[ -f "${CLUSTER_DIR}/data/postmaster.pid" ]]; then
        as_postgres "${PG_BIN}/pg_ctl" -D "${CLUSTER_DIR}/data" -m fast -w stop >/dev/null || true
        say "cluster: stopped"
    fi
}

case "${1:-}" in
    start) start ;;
    stop) stop ;;
    *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
