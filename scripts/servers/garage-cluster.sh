#!/usr/bin/env bash
# 3-node Garage 2.5.0 cluster on loopback, replication_factor 3, for fault-injection tests.
# Node N (1..3): S3 API 127.0.0.1:39N0 (region "garage"), RPC :39N1, admin :39N3; zone dcN.
# Files under $STATE_DIR/garage-cluster: nN.toml, nN.log, nN.pid, nN/{meta,data}.
# Bucket storagedriver-test, owned by the fixed cluster test key in lib.sh.
#
# Usage: garage-cluster.sh install            build or reuse the garage binary
#        garage-cluster.sh start              fresh cluster (stops a running one first)
#        garage-cluster.sh stop               stop all nodes (SIGTERM, then SIGKILL after 10 s) and
#                                             delete their data
#        garage-cluster.sh kill-node N        SIGKILL node N
#        garage-cluster.sh start-node N       restart node N with its existing data
#        garage-cluster.sh status             `garage status` through a running node
#        garage-cluster.sh wait-healthy [S]   until every node reports all 3 nodes up (default 60 s)
set -euo pipefail
# shellcheck source=scripts/servers/lib.sh
. "$(dirname "$0")/lib.sh"

CDIR=$STATE_DIR/garage-cluster
NODES=(1 2 3)

cfg() { echo "$CDIR/n$1.toml"; }
pidfile() { echo "$CDIR/n$1.pid"; }
s3_port() { echo $((3900 + 10 * $1)); }
rpc_port() { echo $((3901 + 10 * $1)); }
admin_port() { echo $((3903 + 10 * $1)); }

check_node_arg() {
    case "${1:-}" in
    1 | 2 | 3) ;;
    *) die "node must be 1, 2 or 3, got '${1:-}'" ;;
    esac
}

garage_n() {
    local n=$1
    shift
    "$GARAGE_BIN" -c "$(cfg "$n")" "$@"
}

admin_token() {
    sed -n 's/^admin_token = "\(.*\)"$/\1/p' "$(cfg 1)"
}

# write_config N RPC_SECRET ADMIN_TOKEN [PEER...]: nN.toml; PEERs (<id>@<addr>) go to bootstrap_peers.
write_config() {
    local n=$1 rpc_secret=$2 admin_token=$3 peers=""
    shift 3
    [ $# -eq 0 ] || peers=$(printf '"%s", ' "$@")
    (
        umask 077
        cat >"$(cfg "$n")" <<EOF
metadata_dir = "$CDIR/n$n/meta"
data_dir = "$CDIR/n$n/data"
db_engine = "sqlite"
replication_factor = 3
rpc_bind_addr = "127.0.0.1:$(rpc_port "$n")"
rpc_public_addr = "127.0.0.1:$(rpc_port "$n")"
rpc_secret = "$rpc_secret"
bootstrap_peers = [${peers%, }]

[s3_api]
s3_region = "$GARAGE_REGION"
api_bind_addr = "127.0.0.1:$(s3_port "$n")"
root_domain = ".s3.garage.localhost"

[admin]
api_bind_addr = "127.0.0.1:$(admin_port "$n")"
admin_token = "$admin_token"
EOF
    )
    chmod 600 "$(cfg "$n")"
}

stop_node() {
    stop_pid "garage-cluster n$1" "$(pidfile "$1")" "$(cfg "$1")"
}

stop() {
    local n
    for n in "${NODES[@]}"; do
        stop_node "$n" &
    done
    wait
    rm -rf "${NODES[@]/#/$CDIR/n}"
}

# start_node N: launch node N from its config and wait for its admin port.
start_node() {
    local n=$1 t0 pid log
    [ -f "$(cfg "$n")" ] || die "n$n: no config $(cfg "$n"), run: $0 start"
    if pid_alive "$(pidfile "$n")" "$(cfg "$n")"; then
        log "garage-cluster n$n: already running (pid $(cat "$(pidfile "$n")"))"
        return 0
    fi
    rm -f "$(pidfile "$n")"
    require_ports_free "garage-cluster n$n" "$(s3_port "$n")" "$(rpc_port "$n")" "$(admin_port "$n")"
    log=$CDIR/n$n.log
    t0=$(now)
    RUST_LOG=garage=info NO_COLOR=1 "$GARAGE_BIN" -c "$(cfg "$n")" server >>"$log" 2>&1 &
    pid=$!
    echo "$pid" >"$(pidfile "$n")"
    if ! wait_http "http://127.0.0.1:$(admin_port "$n")/health" 30 "$pid"; then
        show_log "garage-cluster n$n" "$log"
        stop_node "$n"
        return 1
    fi
    check_loopback "garage-cluster n$n" "$pid" || { stop_node "$n"; return 1; }
    log "garage-cluster n$n: started (pid $pid) in $(elapsed "$t0") s"
}

# reconnect_peers N: make every other running node dial node N now. A node marks a peer up only
# after its own outgoing connection succeeds, and retries a lost peer every 30 s; without this a
# restarted node is seen as down by the others for up to 30 s.
reconnect_peers() {
    local n=$1 m id
    id=$(garage_n "$n" node id -q 2>/dev/null) || { log "n$n: node id failed"; return 0; }
    for m in "${NODES[@]}"; do
        [ "$m" != "$n" ] || continue
        pid_alive "$(pidfile "$m")" "$(cfg "$m")" || continue
        retry 10 garage_n "$m" node connect "$id" || log "garage-cluster: n$m could not connect to n$n"
    done
}

start() {
    local t0 n rpc_secret token id ids=() peers=()
    garage_version_ok || die "garage: $GARAGE_BIN missing or not $GARAGE_VERSION, run: $0 install"
    stop
    rm -rf "$CDIR"
    mkdir -p "$CDIR"
    rpc_secret=$(openssl rand -hex 32)
    token=$(openssl rand -hex 32)
    t0=$(now)
    for n in "${NODES[@]}"; do
        mkdir -p "$CDIR/n$n/meta" "$CDIR/n$n/data"
        write_config "$n" "$rpc_secret" "$token"
        start_node "$n" || { stop; exit 1; }
    done
    # node id -q prints <64 hex>@127.0.0.1:<rpc port>.
    for n in "${NODES[@]}"; do
        id=$(garage_n "$n" node id -q 2>/dev/null) || { log "n$n: node id failed"; stop; exit 1; }
        ids+=("$id")
    done
    # Node keys exist only after a first start. bootstrap_peers lets a restarted node (start-node)
    # dial the others at once: its saved peer_list is only written every 60 s, so it may hold
    # nothing. The other direction is reconnect_peers.
    for n in "${NODES[@]}"; do
        peers=()
        for id in "${ids[@]}"; do
            [ "${id##*:}" = "$(rpc_port "$n")" ] || peers+=("$id")
        done
        write_config "$n" "$rpc_secret" "$token" "${peers[@]}"
    done
    if ! {
        retry 15 garage_n 1 node connect "${ids[1]}" &&
            retry 15 garage_n 1 node connect "${ids[2]}" &&
            retry 15 garage_n 1 layout assign -z dc1 -c 1G "${ids[0]%%@*}" &&
            retry 15 garage_n 1 layout assign -z dc2 -c 1G "${ids[1]%%@*}" &&
            retry 15 garage_n 1 layout assign -z dc3 -c 1G "${ids[2]%%@*}" &&
            retry 15 garage_n 1 layout apply --version 1 &&
            retry 30 garage_n 1 key import --yes "$GARAGE_CLUSTER_ACCESS_KEY" "$GARAGE_CLUSTER_SECRET_KEY" \
                -n storagedriver-test &&
            retry 30 garage_n 1 bucket create "$GARAGE_BUCKET" &&
            retry 30 garage_n 1 bucket allow --read --write --owner "$GARAGE_BUCKET" \
                --key "$GARAGE_CLUSTER_ACCESS_KEY"
    }; then
        for n in "${NODES[@]}"; do show_log "garage-cluster n$n" "$CDIR/n$n.log"; done
        stop
        exit 1
    fi
    wait_healthy 60 || { stop; exit 1; }
    log "garage-cluster: ready at http://127.0.0.1:$(s3_port 1) (also :$(s3_port 2), :$(s3_port 3); bucket $GARAGE_BUCKET) in $(elapsed "$t0") s"
}

kill_node() {
    local n=$1 pid i t0
    check_node_arg "$n"
    t0=$(now)
    if ! pid_alive "$(pidfile "$n")" "$(cfg "$n")"; then
        log "garage-cluster n$n: not running"
        rm -f "$(pidfile "$n")"
        return 0
    fi
    pid=$(cat "$(pidfile "$n")")
    kill -KILL "$pid"
    for ((i = 0; i < 50; i++)); do
        proc_alive "$pid" || break
        sleep 0.1
    done
    rm -f "$(pidfile "$n")"
    log "garage-cluster n$n: killed pid $pid (SIGKILL) in $(elapsed "$t0") s"
}

status() {
    local n live=
    for n in "${NODES[@]}"; do
        if pid_alive "$(pidfile "$n")" "$(cfg "$n")"; then
            echo "n$n: running, pid $(cat "$(pidfile "$n")"), s3 http://127.0.0.1:$(s3_port "$n")"
            [ -n "$live" ] || live=$n
        else
            echo "n$n: down"
        fi
    done
    [ -n "$live" ] || die "garage-cluster: no node is running"
    garage_n "$live" status
}

# json_val JSON KEY: a string or integer field of a flat JSON object.
json_val() {
    grep -oE "\"$2\" *: *(\"[^\"]*\"|[0-9]+)" <<<"$1" | head -n 1 | sed -E 's/^[^:]*: *"?([^"]*)"?$/\1/'
}

# node_health N: one-word verdict plus a summary of node N's GET /v2/GetClusterHealth.
node_health() {
    local n=$1 body st up total ok parts
    body=$(curl -s --max-time 2 -H "Authorization: Bearer $(admin_token)" \
        "http://127.0.0.1:$(admin_port "$n")/v2/GetClusterHealth" || true)
    st=$(json_val "$body" status)
    if [ -z "$st" ]; then
        echo "down n$n:down"
        return
    fi
    up=$(json_val "$body" storageNodesUp)
    total=$(json_val "$body" storageNodes)
    ok=$(json_val "$body" partitionsAllOk)
    parts=$(json_val "$body" partitions)
    if [ "$st" = healthy ] && [ "$up" = 3 ] && [ "$total" = 3 ] && [ "$ok" = "$parts" ]; then
        echo "ok n$n:$st,up=$up/$total,all_ok=$ok/$parts"
    else
        echo "wait n$n:$st,up=$up/$total,all_ok=$ok/$parts"
    fi
}

# wait_healthy TIMEOUT_S: until all 3 nodes report "healthy" with 3/3 storage nodes up and all
# partitions fully available; prints each change of what it sees.
wait_healthy() {
    local timeout=${1:-60} t0 deadline n line verdict seen last="" all_ok
    [[ $timeout =~ ^[0-9]+$ ]] || die "wait-healthy: timeout must be whole seconds, got '$timeout'"
    [ -f "$(cfg 1)" ] || die "garage-cluster: not started (no $(cfg 1))"
    t0=$(now)
    deadline=$(deadline_in "$timeout")
    while :; do
        all_ok=1
        seen=
        for n in "${NODES[@]}"; do
            line=$(node_health "$n")
            verdict=${line%% *}
            [ "$verdict" = ok ] || all_ok=
            seen+="${line#* } "
        done
        if [ "$seen" != "$last" ]; then
            log "garage-cluster: +$(elapsed "$t0")s $seen"
            last=$seen
        fi
        if [ -n "$all_ok" ]; then
            log "garage-cluster: healthy after $(elapsed "$t0") s"
            return 0
        fi
        if past "$deadline"; then
            log "garage-cluster: not healthy after ${timeout}s"
            return 1
        fi
        sleep 0.2
    done
}

case "${1:-}" in
install) garage_install ;;
start) start ;;
stop) stop ;;
kill-node)
    check_node_arg "${2:-}"
    kill_node "$2"
    ;;
start-node)
    check_node_arg "${2:-}"
    start_node "$2"
    reconnect_peers "$2"
    ;;
status) status ;;
wait-healthy) wait_healthy "${2:-60}" ;;
*)
    sed -n '7,13s/^# \{0,1\}//p' "$0" >&2
    exit 2
    ;;
esac
