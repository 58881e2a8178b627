#!/usr/bin/env bash
# Single-node Garage 2.5.0 on 127.0.0.1: S3 API :3900 (region "garage"), RPC :3901, admin :3903.
# Buckets storagedriver-test and storagedriver-bench, both owned by the fixed test key in lib.sh.
# Garage checks SigV4 signatures. Fresh (empty) data on every start; stop deletes it (the tests'
# objects add up to gigabytes over a run).
# Usage: garage.sh install|start|stop
set -euo pipefail
# shellcheck source=scripts/servers/lib.sh
. "$(dirname "$0")/lib.sh"

DIR=$STATE_DIR/garage
CFG=$DIR/garage.toml
LOG=$DIR/garage.log
PIDFILE=$STATE_DIR/garage.pid
S3_PORT=3900
RPC_PORT=3901
ADMIN_PORT=3903

stop() {
    stop_pid garage "$PIDFILE" "$CFG"
    rm -rf "$DIR/meta" "$DIR/data"
}

write_config() {
    local rpc_secret admin_token
    rpc_secret=$(openssl rand -hex 32)
    admin_token=$(openssl rand -hex 32)
    (
        umask 077
        cat >"$CFG" <<EOF
metadata_dir = "$DIR/meta"
data_dir = "$DIR/data"
db_engine = "sqlite"
replication_factor = 1
rpc_bind_addr = "127.0.0.1:$RPC_PORT"
rpc_public_addr = "127.0.0.1:$RPC_PORT"
rpc_secret = "$rpc_secret"

[s3_api]
s3_region = "$GARAGE_REGION"
api_bind_addr = "127.0.0.1:$S3_PORT"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$ADMIN_PORT"
admin_token = "$admin_token"
EOF
    )
    chmod 600 "$CFG"
}

start() {
    local t0 pid
    garage_version_ok || die "garage: $GARAGE_BIN missing or not $GARAGE_VERSION, run: $0 install"
    stop
    require_ports_free garage "$S3_PORT" "$RPC_PORT" "$ADMIN_PORT"
    rm -rf "$DIR"
    mkdir -p "$DIR/meta" "$DIR/data"
    write_config
    t0=$(now)
    GARAGE_DEFAULT_ACCESS_KEY=$GARAGE_ACCESS_KEY \
        GARAGE_DEFAULT_SECRET_KEY=$GARAGE_SECRET_KEY \
        GARAGE_DEFAULT_BUCKET=$GARAGE_BUCKET \
        RUST_LOG=garage=info NO_COLOR=1 \
        "$GARAGE_BIN" -c "$CFG" server --single-node --default-bucket >"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    if ! wait_http "http://127.0.0.1:$S3_PORT/" 30 "$pid"; then
        abort_start garage "$LOG"
    fi
    # The default key and bucket exist before the API listens; the bench bucket is added here.
    if ! retry 10 "$GARAGE_BIN" -c "$CFG" bucket create "$GARAGE_BENCH_BUCKET" ||
        ! retry 10 "$GARAGE_BIN" -c "$CFG" bucket allow --read --write --owner \
            "$GARAGE_BENCH_BUCKET" --key "$GARAGE_ACCESS_KEY"; then
        abort_start garage "$LOG"
    fi
    check_loopback garage "$pid" || { stop; exit 1; }
    log "garage: ready at http://127.0.0.1:$S3_PORT (buckets $GARAGE_BUCKET, $GARAGE_BENCH_BUCKET) in $(elapsed "$t0") s"
}

run_action "${1:-}" garage_install
