#!/bin/sh
# Start a Model Depot Redis data node (node.conf) under Sentinel, in the role the sentinels give it:
#   start-node.sh CONFIG [redis-server options...]
# It asks the sentinels which node is the primary (SENTINEL get-master-addr-by-name) and starts as that
# node's replica unless it is that primary itself, so an old primary that comes back after a failover
# never returns as a second primary. When no sentinel answers (the very first start, or no sentinels yet)
# it starts in its configured role: the replica of REDIS_REPLICAOF if that is set, the primary if not.
#
# Environment:
#   REDIS_SENTINELS          the sentinels, "host[:port] host[:port] ..." (port 26379 if left out)
#   REDIS_SERVICE            the name the sentinels monitor (default modeldepot)
#   REDIS_NODE_HOST          the name or address the sentinels and the other node reach this node by. When
#                            set, it is announced (--replica-announce-ip), so that the sentinels name this
#                            node by it whatever its role. Default: `hostname`, not announced; then the
#                            addresses of `hostname -i` count as this node too.
#   REDIS_NODE_PORT          this node's port (default 6379)
#   REDIS_REPLICAOF          "host port" of the primary to follow when no sentinel answers (default: none,
#                            start as the primary)
#   REDIS_SENTINEL_PASSWORD  the sentinels' requirepass, if they have one
#   REDIS_SENTINEL_WAIT_S    how long to keep asking before falling back to the configured role (default 5)
#   REDIS_SERVER, REDIS_CLI  the binaries (default: redis-server and redis-cli from PATH)
set -eu
set -f

log() {
    echo "start-node: $*" >&2
}

if [ $# -lt 1 ]; then
    echo "usage: start-node.sh CONFIG [redis-server options...]" >&2
    exit 2
fi
config=$1
shift

service=${REDIS_SERVICE:-modeldepot}
node_host=${REDIS_NODE_HOST:-$(hostname)}
announce=""
if [ -n "${REDIS_NODE_HOST:-}" ]; then
    announce="--replica-announce-ip $REDIS_NODE_HOST"
fi
node_port=${REDIS_NODE_PORT:-6379}
wait_s=${REDIS_SENTINEL_WAIT_S:-5}
server=${REDIS_SERVER:-redis-server}
cli=${REDIS_CLI:-redis-cli}
case $wait_s in
    '' | *[!0-9]*)
        echo "start-node: REDIS_SENTINEL_WAIT_S must be a number of seconds, not '$wait_s'" >&2
        exit 2
        ;;
esac
# redis-cli sends REDISCLI_AUTH to every server it talks to, and fails against a sentinel without one.
if [ -n "${REDIS_SENTINEL_PASSWORD:-}" ]; then
    REDISCLI_AUTH=$REDIS_SENTINEL_PASSWORD
    export REDISCLI_AUTH
else
    unset REDISCLI_AUTH
fi
# A sentinel behind a dead link would hold the start for minutes without this.
timeout=""
if command -v timeout >/dev/null 2>&1; then
    timeout="timeout 3"
fi

# Print "host port" of the primary as the sentinel $1 (host[:port]) names it; fail if it gives no answer.
ask_sentinel() {
    s_host=${1%:*}
    s_port=${1##*:}
    if [ "$s_host" = "$1" ]; then
        s_port=26379
    fi
    answer=$($timeout "$cli" -h "$s_host" -p "$s_port" --raw -e \
        SENTINEL get-master-addr-by-name "$service" 2>/dev/null) || return 1
    set -- $answer
    [ $# -eq 2 ] || return 1
    case $2 in
        '' | *[!0-9]*) return 1 ;;
    esac
    echo "$1 $2"
}

# The first answer of any sentinel, asking all of them once a second for up to $wait_s seconds.
find_primary() {
    waited=0
    while :; do
        for sentinel in ${REDIS_SENTINELS:-}; do
            if ask_sentinel "$sentinel"; then
                return 0
            fi
        done
        if [ "$waited" -ge "$wait_s" ]; then
            return 1
        fi
        waited=$((waited + 1))
        sleep 1
    done
}

is_this_node() {
    [ "$2" = "$node_port" ] || return 1
    [ "$1" = "$node_host" ] && return 0
    for address in $(hostname -i 2>/dev/null || true); do
        [ "$1" = "$address" ] && return 0
    done
    return 1
}

if [ -z "${REDIS_SENTINELS:-}" ]; then
    log "REDIS_SENTINELS is not set"
    primary=""
elif ! primary=$(find_primary); then
    log "no sentinel of '$REDIS_SENTINELS' answered"
    primary=""
fi
unset REDISCLI_AUTH

if [ -n "$primary" ]; then
    primary_host=${primary% *}
    primary_port=${primary#* }
    if is_this_node "$primary_host" "$primary_port"; then
        log "the sentinels name this node ($primary_host:$primary_port) as the primary: starting as the primary"
        exec "$server" "$config" "$@" $announce
    fi
    log "the sentinels name $primary_host:$primary_port as the primary: starting as its replica"
    exec "$server" "$config" "$@" $announce --replicaof "$primary_host" "$primary_port"
fi
if [ -n "${REDIS_REPLICAOF:-}" ]; then
    log "starting in the configured role: replica of $REDIS_REPLICAOF"
    exec "$server" "$config" "$@" $announce --replicaof $REDIS_REPLICAOF
fi
log "starting in the configured role: primary"
exec "$server" "$config" "$@" $announce
