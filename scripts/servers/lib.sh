# shellcheck shell=bash disable=SC2034  # variables are used by the scripts that source this
# Shared helpers for scripts/servers/*.sh. Sourced, not run.
#
# STORAGEDRIVER_CACHE         installs (default ${XDG_CACHE_HOME:-~/.cache}/storagedriver-rs)
# STORAGEDRIVER_SERVERS_DIR   config, data, logs, pid files (default <repo>/target/servers)

SERVERS_SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO_DIR=$(cd "$SERVERS_SCRIPT_DIR/../.." && pwd)
CACHE_DIR=${STORAGEDRIVER_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/storagedriver-rs}
STATE_DIR=${STORAGEDRIVER_SERVERS_DIR:-$REPO_DIR/target/servers}
mkdir -p "$STATE_DIR"
STATE_DIR=$(cd "$STATE_DIR" && pwd)

# Garage build and fixed test credentials (key id: GK + 24 hex, secret: 64 hex).
GARAGE_VERSION=2.5.0
GARAGE_ROOT=$CACHE_DIR/garage-$GARAGE_VERSION
GARAGE_BIN=$GARAGE_ROOT/bin/garage
GARAGE_REGION=garage
GARAGE_BUCKET=storagedriver-test
GARAGE_BENCH_BUCKET=storagedriver-bench
GARAGE_ACCESS_KEY=GK5e1f0c0ffee0d15ea5e00001
GARAGE_SECRET_KEY=22e02016dfaa9d99bc56b9762234f0413de7c081dbd6c75398fdeece9b6fc91e
GARAGE_CLUSTER_ACCESS_KEY=GK5e1f0c0ffee0d15ea5e00003
GARAGE_CLUSTER_SECRET_KEY=18f8a442b1df3b6b79af5ed7d56177f9dec50af9bf73232831158330ae610353

# The garage CLI reads these; a value from the caller's environment would override our configs.
unset GARAGE_RPC_HOST GARAGE_CONFIG_FILE GARAGE_RPC_SECRET GARAGE_RPC_SECRET_FILE \
    GARAGE_ADMIN_TOKEN GARAGE_ADMIN_TOKEN_FILE GARAGE_METRICS_TOKEN GARAGE_METRICS_TOKEN_FILE

log() { printf '%s\n' "$*" >&2; }
die() { log "error: $*"; exit 1; }

now() { date +%s.%N; }
# elapsed START: seconds since START (from now), 2 decimals.
elapsed() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.2f", b - a }'; }

# http_code URL [curl args...]: HTTP status, or 000 when nothing answered.
http_code() {
    local url=$1
    shift
    curl -s -o /dev/null -w '%{http_code}' --max-time 2 "$@" "$url" || true
}

# deadline_in SECONDS: the time (as `now` prints it) SECONDS from now.
deadline_in() {
    awk -v t="$1" -v n="$(now)" 'BEGIN { printf "%.3f", n + t }'
}

# past DEADLINE: true once `now` is later than DEADLINE (from deadline_in).
past() {
    awk -v d="$1" -v n="$(now)" 'BEGIN { exit !(n > d) }'
}

# wait_http URL TIMEOUT_S [PID]: until curl gets any HTTP status (not 000).
# Fails at once if PID is given and that process has exited.
wait_http() {
    local url=$1 timeout=$2 pid=${3:-} deadline code
    deadline=$(deadline_in "$timeout")
    while :; do
        code=$(http_code "$url")
        [ "$code" != 000 ] && return 0
        if [ -n "$pid" ] && ! proc_alive "$pid"; then
            log "process $pid exited while waiting for $url"
            return 1
        fi
        if past "$deadline"; then
            log "no HTTP answer from $url after ${timeout}s"
            return 1
        fi
        sleep 0.1
    done
}

# proc_alive PID: the process exists and is not a zombie.
proc_alive() {
    local state
    kill -0 "$1" 2>/dev/null || return 1
    state=$(sed 's/^.*) //' "/proc/$1/stat" 2>/dev/null | cut -d' ' -f1) || return 1
    [ -n "$state" ] && [ "$state" != Z ]
}

# pid_alive PIDFILE [MATCH]: the pid in PIDFILE is running (and its command line contains MATCH).
pid_alive() {
    local pidfile=$1 match=${2:-} pid
    [ -s "$pidfile" ] || return 1
    pid=$(cat "$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    proc_alive "$pid" || return 1
    if [ -n "$match" ]; then
        tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$match" || return 1
    fi
}

# stop_pid NAME PIDFILE [MATCH]: SIGTERM, wait up to 10 s, then SIGKILL; removes PIDFILE.
# MATCH guards against a reused pid: the process is only signalled if its command line contains it.
stop_pid() {
    local name=$1 pidfile=$2 match=${3:-} pid i t0
    [ -e "$pidfile" ] || return 0
    pid=$(cat "$pidfile")
    if ! pid_alive "$pidfile" "$match"; then
        log "$name: not running (stale pid file $pidfile)"
        rm -f "$pidfile"
        return 0
    fi
    t0=$(now)
    kill -TERM "$pid" 2>/dev/null || true
    for ((i = 0; i < 100; i++)); do
        proc_alive "$pid" || break
        sleep 0.1
    done
    if proc_alive "$pid"; then
        log "$name: pid $pid still alive after 10 s, sending SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            proc_alive "$pid" || break
            sleep 0.1
        done
    fi
    rm -f "$pidfile"
    log "$name: stopped pid $pid in $(elapsed "$t0") s"
}

# require_ports_free NAME PORT...: fail if something already listens on one of the ports.
require_ports_free() {
    local name=$1 port busy
    shift
    for port in "$@"; do
        busy=$(ss -Hltnp "sport = :$port" 2>/dev/null || true)
        if [ -n "$busy" ]; then
            die "$name: port $port is already in use: $busy"
        fi
    done
}

# check_loopback NAME PID: every TCP listener of PID is on 127.0.0.1; prints them.
check_loopback() {
    local name=$1 pid=$2 lines bad
    lines=$(ss -Hltnp | grep -E "pid=$pid," || true)
    [ -n "$lines" ] || die "$name: pid $pid has no TCP listener"
    bad=$(awk '$4 !~ /^127\.0\.0\.1:/' <<<"$lines")
    if [ -n "$bad" ]; then
        log "$name: listeners not on 127.0.0.1:"
        log "$bad"
        return 1
    fi
    log "$name: listening on $(awk '{ print $4 }' <<<"$lines" | sort | tr '\n' ' ')(pid $pid)"
}

# retry TIMEOUT_S CMD...: run CMD (output hidden) every 0.5 s until it succeeds; on timeout show
# its last output.
retry() {
    local timeout=$1 deadline out
    shift
    deadline=$(deadline_in "$timeout")
    while :; do
        if out=$("$@" 2>&1); then
            return 0
        fi
        if past "$deadline"; then
            log "failed after ${timeout}s: $*"
            log "$out"
            return 1
        fi
        sleep 0.5
    done
}

# abort_start NAME FILE: a server that did not come up: shows the last lines of its log, stops
# it (the calling script's own `stop`) and exits 1.
abort_start() {
    show_log "$1" "$2"
    stop
    exit 1
}

# run_action ACTION [INSTALL_FUNCTION]: the command line of a server script: runs its install
# (INSTALL_FUNCTION, default `install`), start or stop function.
run_action() {
    case "${1:-}" in
    install) "${2:-install}" ;;
    start) start ;;
    stop) stop ;;
    *)
        echo "usage: $0 install|start|stop" >&2
        exit 2
        ;;
    esac
}

# show_log NAME FILE: last lines of a server log, for failures.
show_log() {
    log "---- $1: last lines of $2"
    tail -n 30 "$2" >&2 2>/dev/null || true
    log "----"
}

# garage_version_ok: the cached binary exists and reports $GARAGE_VERSION.
# `garage --version` prints e.g. "garage cargo:2.5.0 [features: sqlite, system-libs]".
garage_version_ok() {
    [ -x "$GARAGE_BIN" ] || return 1
    "$GARAGE_BIN" --version 2>/dev/null | grep -qE "(^|[^0-9.])${GARAGE_VERSION//./\\.}([^0-9.]|$)"
}

# garage_install: reuse the cached binary or build it (about 6 min on 2 cores).
garage_install() {
    local t0 pkg missing=()
    t0=$(now)
    if garage_version_ok; then
        log "garage: cached $("$GARAGE_BIN" --version) ($GARAGE_BIN), checked in $(elapsed "$t0") s"
        return 0
    fi
    for pkg in libsqlite3-dev libsodium-dev libzstd-dev pkg-config; do
        dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
    done
    if [ ${#missing[@]} -gt 0 ]; then
        log "garage: apt-get install -y ${missing[*]}"
        if [ "$(id -u)" = 0 ]; then
            apt-get install -y "${missing[@]}"
        else
            sudo apt-get install -y "${missing[@]}"
        fi
    fi
    log "garage: building $GARAGE_VERSION into $GARAGE_ROOT (about 6 min on 2 cores)"
    cargo install "garage@$GARAGE_VERSION" --locked --no-default-features --features sqlite,system-libs \
        --root "$GARAGE_ROOT" --target-dir "$CACHE_DIR/garage-target"
    garage_version_ok || die "garage: $GARAGE_BIN does not report version $GARAGE_VERSION"
    log "garage: built $("$GARAGE_BIN" --version) in $(elapsed "$t0") s"
}
