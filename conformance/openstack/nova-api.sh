#!/usr/bin/env bash
# Stops or starts one region's nova-api alone, for the outage test:
#   nova-api.sh stop N    # N = 1 (RegionOne) or 2 (RegionTwo)
#   nova-api.sh start N
# It works only on what start.sh recorded in $MOS_STATE/run/pids.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
. "$HERE/lib.sh"
action=${1:?stop or start}; r=${2:?region number}
S=$MOS_STATE; PIDS=$S/run/pids; name="nova$r-api"; port=$(mos_nova_port "$r")

case "$action" in
stop)
    pid=$(awk -v n="$name" '$1 == n {p = $2} END {print p}' "$PIDS")
    [ -n "$pid" ] || { echo "no $name in $PIDS" >&2; exit 1; }
    kill -TERM -- "-$pid" 2>/dev/null || true
    for _ in $(seq 1 80); do
        [ -z "$(ps -o pid= --sid "$pid" 2>/dev/null)" ] && break
        sleep 0.25
    done
    kill -KILL -- "-$pid" 2>/dev/null || true
    grep -v "^$name " "$PIDS" > "$PIDS.new" || true
    mv "$PIDS.new" "$PIDS"
    echo "[nova-api] $name stopped"
    ;;
start)
    setsid env OS_NOVA_CONFIG_DIR="$S/etc/nova$r" "$MOS_VENV/bin/python" "$HERE/wsgi_run.py" \
        "$name" "$MOS_HOST:$port" nova.wsgi.osapi_compute:application "$S/log/$name-access.log" \
        >> "$S/log/$name.out" 2>&1 < /dev/null &
    echo "$name $!" >> "$PIDS"
    for _ in $(seq 1 240); do
        code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 "http://$MOS_HOST:$port/" || true)
        if [ "$code" != "000" ] && [ "$code" -lt 500 ]; then
            echo "[nova-api] $name answering"
            exit 0
        fi
        sleep 0.25
    done
    echo "[nova-api] $name did not come back (see $S/log/$name.out)" >&2
    exit 1
    ;;
*) echo "usage: $0 stop|start N" >&2; exit 2 ;;
esac
