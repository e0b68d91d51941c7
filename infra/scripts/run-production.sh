#!/usr/bin/env bash
# AmberWatch, production variant: nginx in front, mapserv as FastCGI workers (spawn-fcgi) for /ows,
# uvicorn behind for the REST API and OGC API Features (/ogcapi). Runs in the foreground; Ctrl-C stops all.
#
#   infra/scripts/run-production.sh
#
# Environment (all optional):
#   AMBERWATCH_DATA_DIR    data directory (default ./var); generated OGC configs are in $AMBERWATCH_DATA_DIR/ogc
#   AMBERWATCH_PUBLIC_URL  URL clients use (default http://<AW_LISTEN>); written into capabilities and links
#   AMBERWATCH_DATABASE_URL  external PostGIS (default: embedded cluster in the data directory)
#   AW_LISTEN              nginx listen address (default 0.0.0.0:8080)
#   AW_APP_PORT            uvicorn port on 127.0.0.1 (default 8001)
#   AW_APP_WORKERS         uvicorn worker processes (default 1; pygeoapi in other workers reloads the config file
#                          when it changes; note uvicorn issue 3149: several workers lose TCP_NODELAY)
#   AW_MAPSERV_WORKERS     mapserv FastCGI workers (default: number of CPUs)
#   AW_RUN_DIR             sockets, pids, logs, nginx temp (default $AMBERWATCH_DATA_DIR/run)
# Needs: apt-get install nginx-light spawn-fcgi cgi-mapserver; the amberwatch package in the Python environment.
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
INFRA=$(dirname "$HERE")
REPO=$(dirname "$INFRA")
PYTHON=${PYTHON:-$REPO/.venv/bin/python}
[ -x "$PYTHON" ] || PYTHON=$(command -v python3)

export AMBERWATCH_DATA_DIR=$(realpath -m "${AMBERWATCH_DATA_DIR:-./var}")
export AW_LISTEN=${AW_LISTEN:-0.0.0.0:8080}
export AW_APP_PORT=${AW_APP_PORT:-8001} AW_APP_HOST=127.0.0.1
AW_APP_WORKERS=${AW_APP_WORKERS:-1}
AW_MAPSERV_WORKERS=${AW_MAPSERV_WORKERS:-$(nproc)}
export AW_RUN_DIR=$(realpath -m "${AW_RUN_DIR:-$AMBERWATCH_DATA_DIR/run}")
export AW_OGC_DIR=$AMBERWATCH_DATA_DIR/ogc
export AW_MAX_UPLOAD_MB=${AMBERWATCH_MAX_UPLOAD_MB:-2048}
listen_host=${AW_LISTEN%:*}
[ "$listen_host" = "0.0.0.0" ] && listen_host=$(hostname -f 2>/dev/null || echo localhost)
export AMBERWATCH_PUBLIC_URL=${AMBERWATCH_PUBLIC_URL:-http://$listen_host:${AW_LISTEN##*:}}
# uvicorn itself listens on loopback only; clients reach it through nginx
export AMBERWATCH_HOST=127.0.0.1 AMBERWATCH_PORT=$AW_APP_PORT
# nginx sends GET /ows to the spawn-fcgi workers below; the app's own pool (amberwatch.publish.fcgi) only answers
# the POSTs nginx hands it: one worker per uvicorn process is enough
export AMBERWATCH_MAPSERV_WORKERS=${AMBERWATCH_MAPSERV_WORKERS:-1}

for tool in nginx spawn-fcgi envsubst; do
    command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || {
        echo "$tool not found: apt-get install nginx-light spawn-fcgi gettext-base" >&2; exit 1; }
done

mkdir -p "$AW_RUN_DIR"/{log,nginx} "$AMBERWATCH_DATA_DIR"
pids=()
cleanup() {
    trap - EXIT INT TERM
    [ -f "$AW_RUN_DIR/nginx.pid" ] && kill "$(cat "$AW_RUN_DIR/nginx.pid")" 2>/dev/null || true
    if [ -f "$AW_RUN_DIR/mapserv.pid" ]; then
        # an idle FastCGI mapserv only marks the first SIGTERM; it ends on the next one (or SIGKILL)
        for sig in TERM TERM KILL; do
            xargs -r kill -s "$sig" < "$AW_RUN_DIR/mapserv.pid" 2>/dev/null || break
            sleep 0.5
        done
        rm -f "$AW_RUN_DIR/mapserv.pid" "$AW_RUN_DIR/mapserv.sock"
    fi
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
}
trap cleanup EXIT INT TERM

# 1. the app: starts (or connects to) PostGIS, runs publish.refresh (writes $AW_OGC_DIR), serves /api and /ogcapi
echo "starting uvicorn on 127.0.0.1:$AW_APP_PORT ($AW_APP_WORKERS worker(s))"
# the web processes run no jobs: one `amberwatch worker` below runs them (bounded, with recovery)
AMBERWATCH_INPROCESS_WORKER=false "$PYTHON" -m uvicorn --factory amberwatch.web.app:app_from_environment --host 127.0.0.1 --port "$AW_APP_PORT" \
    --workers "$AW_APP_WORKERS" --proxy-headers --forwarded-allow-ips 127.0.0.1 \
    >>"$AW_RUN_DIR/log/uvicorn.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 600); do
    curl -fsS "http://127.0.0.1:$AW_APP_PORT/health" >/dev/null 2>&1 && break
    kill -0 "${pids[0]}" 2>/dev/null || { echo "uvicorn exited; see $AW_RUN_DIR/log/uvicorn.log" >&2; tail -20 "$AW_RUN_DIR/log/uvicorn.log" >&2; exit 1; }
    sleep 0.5
done
curl -fsS "http://127.0.0.1:$AW_APP_PORT/health" >/dev/null || { echo "uvicorn did not become healthy" >&2; exit 1; }

# 1b. the job worker (detection runs, tracking)
"$PYTHON" -m amberwatch worker >>"$AW_RUN_DIR/log/worker.log" 2>&1 &
pids+=($!)

# 2. mapserv FastCGI workers reading the config that publish.refresh wrote
"$INFRA/mapserver/spawn-mapserv.sh" "$AW_OGC_DIR" "$AW_RUN_DIR/mapserv.sock" "$AW_MAPSERV_WORKERS"

# 3. nginx in front: the same script as compose's nginx service renders the template and runs it in the foreground
if [ "$(id -u)" = 0 ]; then export AW_NGINX_USER="user www-data;"; else export AW_NGINX_USER=""; fi
"$INFRA/compose/nginx.sh" &
pids+=($!)

echo "AmberWatch at $AMBERWATCH_PUBLIC_URL"
echo "  WMS/WFS:    $AMBERWATCH_PUBLIC_URL/ows?SERVICE=WMS&REQUEST=GetCapabilities  (mapserv FastCGI x$AW_MAPSERV_WORKERS)"
echo "  OGC API:    $AMBERWATCH_PUBLIC_URL/ogcapi"
echo "  logs:       $AW_RUN_DIR/log"
wait -n "${pids[@]}"
