#!/usr/bin/env bash
# Start mapserv as FastCGI workers on a unix socket for nginx (infra/scripts/run-production.sh). The app itself
# needs no such script: amberwatch.publish.fcgi starts and supervises its own pool (AMBERWATCH_MAPSERV_WORKERS).
#
#   spawn-mapserv.sh OGC_DIR SOCKET [WORKERS]
#
# OGC_DIR is AMBERWATCH_DATA_DIR/ogc, where amberwatch.publish.refresh() writes mapserver.conf and the mapfile.
# MAPSERVER_CONFIG_FILE must be in the workers' environment (MapServer 8 reads it at start-up).
# The workers run as the calling user: they must be able to read the generated mapfile (mode 0600, it holds the
# database password), so call this as the user that runs AmberWatch.
# When called as root, SOCKET_USER (default www-data) owns the socket so that nginx workers can connect.
set -euo pipefail

OGC_DIR=${1:?usage: spawn-mapserv.sh OGC_DIR SOCKET [WORKERS]}
SOCKET=${2:?usage: spawn-mapserv.sh OGC_DIR SOCKET [WORKERS]}
WORKERS=${3:-$(nproc)}
MAPSERV=${MAPSERV:-$(command -v mapserv || echo /usr/lib/cgi-bin/mapserv)}

[ -x "$MAPSERV" ] || { echo "mapserv not found ($MAPSERV): apt-get install cgi-mapserver" >&2; exit 1; }
command -v spawn-fcgi >/dev/null || { echo "spawn-fcgi not found: apt-get install spawn-fcgi" >&2; exit 1; }
[ -f "$OGC_DIR/mapserver.conf" ] || { echo "$OGC_DIR/mapserver.conf missing: start AmberWatch (it runs publish.refresh) first" >&2; exit 1; }

owner=()
if [ "$(id -u)" = 0 ]; then
    SOCKET_USER=${SOCKET_USER:-www-data}
    owner=(-U "$SOCKET_USER" -G "$(id -gn "$SOCKET_USER")" -M 0660)
fi

rm -f "$SOCKET"
export MAPSERVER_CONFIG_FILE="$OGC_DIR/mapserver.conf"
exec spawn-fcgi -s "$SOCKET" "${owner[@]}" -F "$WORKERS" -P "${SOCKET%.sock}.pid" -- "$MAPSERV"
