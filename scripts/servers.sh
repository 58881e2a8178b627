#!/usr/bin/env bash
# Installs (or reuses from the cache) and starts the test servers, S3 (Garage, ministack) and Azure
# Blob (Azurite), all bound to 127.0.0.1, and writes their settings to $STATE_DIR/servers.env
# (source it); stop ends them by their pid files.
#
# Usage: scripts/servers.sh start|stop [garage] [ministack] [garage-cluster] [azurite] (default: all)
#   garage          single-node Garage 2.5.0, :3900, checks SigV4 (scripts/servers/garage.sh)
#   ministack       ministack 1.5.33, :4566, accepts any credentials (scripts/servers/ministack.sh)
#   garage-cluster  3-node Garage, :3910/:3920/:3930 (scripts/servers/garage-cluster.sh)
#   azurite         Azurite 3.37.0 (blob), :10000, checks SharedKey (scripts/servers/azurite.sh)
#
# Environment: STORAGEDRIVER_CACHE (installs, default ~/.cache/storagedriver-rs),
# STORAGEDRIVER_SERVERS_DIR (state, default <repo>/target/servers). The first Garage build takes
# about 6 minutes and the first Azurite install (npm) about 45 s; later runs reuse the cache.
set -euo pipefail
# shellcheck source=scripts/servers/lib.sh
. "$(dirname "$0")/servers/lib.sh"

ALL=(garage ministack garage-cluster azurite)
ENV_FILE=$STATE_DIR/servers.env
# Azurite's well-known development account (the same in every Azurite install).
AZURITE_ACCOUNT=devstoreaccount1
AZURITE_KEY='Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=='

usage() {
    sed -n '6,10s/^# \{0,1\}//p' "$0" >&2
    exit 2
}

# s3_env PREFIX ENDPOINT REGION BUCKET ACCESS_KEY SECRET_KEY: export lines for one server.
s3_env() {
    printf 'export STORAGEDRIVER_S3_%s_ENDPOINT=%q\n' "$1" "$2"
    printf 'export STORAGEDRIVER_S3_%s_REGION=%q\n' "$1" "$3"
    printf 'export STORAGEDRIVER_S3_%s_BUCKET=%q\n' "$1" "$4"
    printf 'export STORAGEDRIVER_S3_%s_ACCESS_KEY=%q\n' "$1" "$5"
    printf 'export STORAGEDRIVER_S3_%s_SECRET_KEY=%q\n' "$1" "$6"
}

write_env() {
    local s tmp=$ENV_FILE.tmp
    {
        echo "# Written by scripts/servers.sh start on $(date -u '+%Y-%m-%dT%H:%M:%SZ')."
        printf 'export STORAGEDRIVER_SERVERS_DIR=%q\n' "$STATE_DIR"
        for s in "$@"; do
            case $s in
            garage)
                s3_env GARAGE http://127.0.0.1:3900 "$GARAGE_REGION" "$GARAGE_BUCKET" \
                    "$GARAGE_ACCESS_KEY" "$GARAGE_SECRET_KEY"
                printf 'export STORAGEDRIVER_S3_GARAGE_BENCH_BUCKET=%q\n' "$GARAGE_BENCH_BUCKET"
                ;;
            ministack)
                s3_env MINISTACK http://127.0.0.1:4566 us-east-1 storagedriver-test test test
                ;;
            garage-cluster)
                s3_env GARAGE_CLUSTER http://127.0.0.1:3910 "$GARAGE_REGION" "$GARAGE_BUCKET" \
                    "$GARAGE_CLUSTER_ACCESS_KEY" "$GARAGE_CLUSTER_SECRET_KEY"
                printf 'export STORAGEDRIVER_S3_GARAGE_CLUSTER_SCRIPT=%q\n' \
                    "$SERVERS_SCRIPT_DIR/garage-cluster.sh"
                ;;
            azurite)
                printf 'export STORAGEDRIVER_AZURE_AZURITE_SERVICE_URL=%q\n' \
                    "http://127.0.0.1:10000/$AZURITE_ACCOUNT"
                printf 'export STORAGEDRIVER_AZURE_AZURITE_ACCOUNT=%q\n' "$AZURITE_ACCOUNT"
                printf 'export STORAGEDRIVER_AZURE_AZURITE_KEY=%q\n' "$AZURITE_KEY"
                ;;
            esac
        done
    } >"$tmp"
    mv "$tmp" "$ENV_FILE"
}

# stop_servers NAME...: stop them in parallel (each by its pid files).
stop_servers() {
    local s
    for s in "$@"; do
        "$SERVERS_SCRIPT_DIR/$s.sh" stop &
    done
    wait
}

# step SERVER ACTION STARTED...: runs `SERVER.sh ACTION`; if it fails, stops the servers already
# started (STARTED...) and exits 1.
step() {
    local s=$1 action=$2
    shift 2
    if ! "$SERVERS_SCRIPT_DIR/$s.sh" "$action"; then
        log "servers: $s $action failed, stopping what was started"
        stop_servers "$@"
        exit 1
    fi
}

start() {
    local s t_all t0 started=() summary=()
    local t_install t_start
    t_all=$(now)
    rm -f "$ENV_FILE"
    for s in "$@"; do
        t0=$(now)
        step "$s" install "${started[@]}"
        t_install=$(elapsed "$t0")
        started+=("$s")
        t0=$(now)
        step "$s" start "${started[@]}"
        t_start=$(elapsed "$t0")
        summary+=("$(printf '%-15s install %7s s   start %6s s' "$s" "$t_install" "$t_start")")
    done
    write_env "$@"
    printf '%s\n' "${summary[@]}"
    echo "servers: all started in $(elapsed "$t_all") s; settings in $ENV_FILE"
}

[ $# -ge 1 ] || usage
cmd=$1
shift
selected=("$@")
[ ${#selected[@]} -gt 0 ] || selected=("${ALL[@]}")
for s in "${selected[@]}"; do
    case $s in
    garage | ministack | garage-cluster | azurite) ;;
    *) usage ;;
    esac
done

case $cmd in
start) start "${selected[@]}" ;;
stop)
    stop_servers "${selected[@]}"
    [ $# -gt 0 ] || rm -f "$ENV_FILE"
    ;;
*) usage ;;
esac
