#!/bin/sh
# nginx in front of the API and the mapserver service (compose.yaml): renders infra/nginx/amberwatch.conf.template
# with the AW_* variables of the service and runs nginx in the foreground as the image's unprivileged user.
set -eu
: "${AW_APP_HOST:?}" "${AW_APP_PORT:?}" "${AW_LISTEN:?}" "${AW_RUN_DIR:?}" "${AW_OGC_DIR:?}"
# AW_NGINX_USER: a `user ...;` directive when the master runs as root (the image runs it unprivileged: none)
export AW_MAX_UPLOAD_MB="${AW_MAX_UPLOAD_MB:-2048}" AW_NGINX_USER="${AW_NGINX_USER-}"
TEMPLATE="$(dirname "$0")/../nginx/amberwatch.conf.template"
mkdir -p "$AW_RUN_DIR/log" "$AW_RUN_DIR/nginx"
envsubst '${AW_NGINX_USER} ${AW_RUN_DIR} ${AW_MAX_UPLOAD_MB} ${AW_APP_HOST} ${AW_APP_PORT} ${AW_LISTEN} ${AW_OGC_DIR}' \
    < "$TEMPLATE" > "$AW_RUN_DIR/nginx.conf"
NGINX=$(command -v nginx || echo /usr/sbin/nginx)
"$NGINX" -t -q -e stderr -p "$AW_RUN_DIR" -c "$AW_RUN_DIR/nginx.conf"
exec "$NGINX" -e stderr -p "$AW_RUN_DIR" -c "$AW_RUN_DIR/nginx.conf" -g "daemon off;"
