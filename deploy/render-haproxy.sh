#!/bin/sh
# Print deploy/haproxy.cfg rendered for the UI workers at hand (POSIX sh + awk; used by local-run.sh and
# the docker-compose balancer). The lines between "BEGIN ui-workers" and "END ui-workers" become one
# `server` line per address in MODELDEPOT_UI_SERVERS; the frontend and stats `bind` addresses become
# MODELDEPOT_LB_BIND and MODELDEPOT_STATS_BIND.
#
#   MODELDEPOT_UI_SERVERS="127.0.0.1:7861 127.0.0.1:7862" deploy/render-haproxy.sh > /tmp/haproxy.cfg
#   haproxy -c -f /tmp/haproxy.cfg
set -eu
template="${1:-$(dirname "$0")/haproxy.cfg}"
: "${MODELDEPOT_UI_SERVERS:?set MODELDEPOT_UI_SERVERS to the UI workers, e.g. \"127.0.0.1:7861 127.0.0.1:7862\"}"
awk -v servers="$MODELDEPOT_UI_SERVERS" -v lb="${MODELDEPOT_LB_BIND:-127.0.0.1:8080}" \
    -v stats="${MODELDEPOT_STATS_BIND:-127.0.0.1:8404}" '
  /# BEGIN ui-workers/ {
    print
    n = split(servers, address, " ")
    # init-addr: start even when a name (docker-compose service) does not resolve yet
    for (i = 1; i <= n; i++) printf "    server ui%d %s check init-addr last,libc,none\n", i, address[i]
    skipping = 1
    next
  }
  /# END ui-workers/ { skipping = 0 }
  skipping { next }
  /^[a-z]/ { section = $1 " " $2 }
  /^[ \t]+bind / && section ~ /^frontend / { sub(/bind [^ ]+/, "bind " lb) }
  /^[ \t]+bind / && section == "listen stats" { sub(/bind [^ ]+/, "bind " stats) }
  { print }
' "$template"
