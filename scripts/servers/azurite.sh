#!/usr/bin/env bash
# Azurite 3.37.0 (npm, Azure Blob Storage emulator), blob service only, on 127.0.0.1:10000.
# Well-known dev account devstoreaccount1 (key in scripts/servers.sh); Azurite checks SharedKey
# signatures. No container is created here: the Azure driver creates its own on first use.
# Fresh (empty) data on every start; stop deletes it (Azurite keeps deleted blobs' extents).
# Usage: azurite.sh install|start|stop
set -euo pipefail
# shellcheck source=scripts/servers/lib.sh
. "$(dirname "$0")/lib.sh"

VERSION=3.37.0
ROOT=$CACHE_DIR/azurite-$VERSION
BIN=$ROOT/node_modules/.bin/azurite-blob
DIR=$STATE_DIR/azurite
DATA=$DIR/data
PIDFILE=$STATE_DIR/azurite.pid
LOG=$DIR/azurite.log
PORT=10000
ACCOUNT=devstoreaccount1

installed_version() {
    node -p 'require(process.argv[1]).version' "$ROOT/node_modules/azurite/package.json" 2>/dev/null
}

install() {
    local t0
    t0=$(now)
    if [ -e "$BIN" ] && [ "$(installed_version || true)" = "$VERSION" ]; then
        log "azurite: cached $VERSION ($ROOT), checked in $(elapsed "$t0") s"
        return 0
    fi
    command -v npm >/dev/null || die "azurite: npm not found (install Node.js and npm)"
    mkdir -p "$ROOT"
    # 3.37.0 declares node >=22; npm warns EBADENGINE on node 20, where the blob service works.
    (cd "$ROOT" && npm install --no-audit --no-fund --loglevel=error "azurite@$VERSION")
    [ "$(installed_version)" = "$VERSION" ] || die "azurite: $VERSION not installed in $ROOT"
    log "azurite: installed $VERSION into $ROOT in $(elapsed "$t0") s"
}

# The pid file names the node process itself; the log stays until the next start.
stop() {
    stop_pid azurite "$PIDFILE" "$DATA"
    rm -rf "$DATA"
}

start() {
    local t0 pid
    [ -e "$BIN" ] || die "azurite: not installed, run: $0 install"
    stop
    require_ports_free azurite "$PORT"
    rm -rf "$DIR"
    mkdir -p "$DATA"
    t0=$(now)
    # --disableTelemetry is mandatory: without it Azurite connects to 169.254.169.254, spools to
    # TMPDIR and ignores SIGTERM. The bin entry is a node script (#!/usr/bin/env node), so $! is
    # the node process that listens. TMPDIR keeps whatever it writes there under $DIR.
    TMPDIR=$DIR "$BIN" --blobHost 127.0.0.1 --blobPort "$PORT" --location "$DATA" \
        --disableTelemetry --silent >"$LOG" 2>&1 &
    pid=$!
    echo "$pid" >"$PIDFILE"
    # Ready at any HTTP answer: the unauthenticated listing gets 403 AuthorizationFailure.
    if ! wait_http "http://127.0.0.1:$PORT/$ACCOUNT?comp=list" 30 "$pid"; then
        abort_start azurite "$LOG"
    fi
    check_loopback azurite "$pid" || { stop; exit 1; }
    log "azurite: ready at http://127.0.0.1:$PORT/$ACCOUNT in $(elapsed "$t0") s"
}

run_action "${1:-}"
