#!/usr/bin/env bash
# ministack 1.5.33 (PyPI, in-memory S3 emulator) on 127.0.0.1:4566, bucket storagedriver-test.
# It accepts any credentials (use test/test, region us-east-1) and does not check signatures.
# Usage: ministack.sh install|start|stop
set -euo pipefail
# shellcheck source=scripts/servers/lib.sh
. "$(dirname "$0")/lib.sh"

VERSION=1.5.33
VENV=$CACHE_DIR/ministack-$VERSION/venv
DIR=$STATE_DIR/ministack
PIDFILE=$STATE_DIR/ministack.pid
LOG=$DIR/ministack.log
PORT=4566
BUCKET=storagedriver-test

installed_version() {
    "$VENV/bin/python" -c 'import importlib.metadata as m; print(m.version("ministack"))' 2>/dev/null
}

install() {
    local t0
    t0=$(now)
    if [ -x "$VENV/bin/ministack" ] && [ "$(installed_version || true)" = "$VERSION" ]; then
        log "ministack: cached $VERSION ($VENV), checked in $(elapsed "$t0") s"
        return 0
    fi
    [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
    "$VENV/bin/pip" install -q "ministack==$VERSION"
    [ "$(installed_version)" = "$VERSION" ] || die "ministack: $VERSION not installed in $VENV"
    log "ministack: installed $VERSION into $VENV in $(elapsed "$t0") s"
}

stop() {
    stop_pid ministack "$PIDFILE" "$VENV/bin/ministack"
}

start() {
    local t0 pid
    [ -x "$VENV/bin/ministack" ] || die "ministack: not installed, run: $0 install"
    stop
    require_ports_free ministack "$PORT"
    rm -rf "$DIR"
    mkdir -p "$DIR"
    t0=$(now)
    # Without BIND_HOST it listens on 0.0.0.0. TMPDIR also receives its own ministack-4566.pid.
    BIND_HOST=127.0.0.1 GATEWAY_PORT=$PORT SERVICES=s3 TMPDIR=$DIR \
        "$VENV/bin/ministack" >"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    if ! wait_http "http://127.0.0.1:$PORT/" 30 "$pid"; then
        abort_start ministack "$LOG"
    fi
    if ! curl -sf -o /dev/null -X PUT "http://127.0.0.1:$PORT/$BUCKET"; then
        log "ministack: cannot create bucket $BUCKET"
        abort_start ministack "$LOG"
    fi
    check_loopback ministack "$pid" || { stop; exit 1; }
    log "ministack: ready at http://127.0.0.1:$PORT (bucket $BUCKET) in $(elapsed "$t0") s"
}

run_action "${1:-}"
