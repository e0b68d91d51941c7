# AmberWatch service image, CPU (onnxruntime): the package built as a wheel with the geoportal bundle, Debian 12
# with PostgreSQL 15 + PostGIS 3 (the embedded default), MapServer 8 (mapserv FastCGI), GDAL tools, nginx and
# WeasyPrint's libraries. One image for every role of infra/compose/compose.yaml: `amberwatch serve` (default),
# `amberwatch worker`, `amberwatch mapserv`, nginx (infra/compose/nginx.sh), `dask scheduler` / `dask worker`.
# GPU workers: Dockerfile.gpu. Docs: docs/operations.md#docker-and-compose.
#
#   docker build -t amberwatch:cpu .
#   docker run -p 8000:8000 -v amberwatch-data:/data amberwatch:cpu

# -- 1. the geoportal's scripts and styles (MapLibre GL, Chart.js) bundled by esbuild, as `make portal` does -----
FROM node:22.12.0-bookworm-slim AS portal
WORKDIR /portal
COPY service/amberwatch/portal/package.json service/amberwatch/portal/package-lock.json ./
RUN npm ci --no-audit --no-fund --loglevel=error
COPY service/amberwatch/portal/js ./js
COPY service/amberwatch/portal/css ./css
RUN npm run build

# -- 2. the amberwatch wheel, with the built bundle inside (package data portal/static) ----------------------------
FROM python:3.11.11-slim-bookworm AS wheel
WORKDIR /src
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
COPY models/amberwatch_training ./models/amberwatch_training
RUN rm -rf service/amberwatch/portal/static service/amberwatch/portal/node_modules
COPY --from=portal /portal/static ./service/amberwatch/portal/static
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

# -- 3. the runtime ---------------------------------------------------------------------------------------------
FROM python:3.11.11-slim-bookworm
# the Makefile's APT_PACKAGES without the test tools (chromium, poppler-utils), plus gettext-base (envsubst renders
# the nginx configuration) and curl for health checks; tests/test_deployment.py keeps the two lists in step
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      postgresql-15-postgis-3 mapserver-bin cgi-mapserver gdal-bin nginx-light spawn-fcgi \
      fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 ffmpeg \
      gettext-base curl \
 && rm -rf /var/lib/apt/lists/*

ARG AMBERWATCH_EXTRAS=""
COPY --from=wheel /wheels /wheels
RUN wheel=$(ls /wheels/amberwatch-*.whl) \
 && pip install --no-cache-dir "${wheel}${AMBERWATCH_EXTRAS:+[$AMBERWATCH_EXTRAS]}" \
 && rm -rf /wheels

# what the package reads from the project folder: the model registry, the OGC templates, the demo scene, infra
WORKDIR /app
COPY models/registry ./models/registry
COPY ogc_config ./ogc_config
COPY demo ./demo
COPY infra ./infra

RUN useradd --uid 10001 --create-home --home-dir /home/amberwatch amberwatch \
 && mkdir -p /data /data/inbox /run/amberwatch /metrics \
 && chown -R amberwatch:amberwatch /data /run/amberwatch /metrics
USER amberwatch
ENV AMBERWATCH_DATA_DIR=/data \
    AMBERWATCH_HOST=0.0.0.0 \
    AMBERWATCH_PORT=8000 \
    AMBERWATCH_MODELS_DIR=/app/models/registry \
    AMBERWATCH_OGC_CONFIG_DIR=/app/ogc_config \
    AMBERWATCH_ALLOWED_ROOTS='["/data/inbox", "/app/demo"]' \
    AMBERWATCH_LOG_FORMAT=json \
    PYTHONUNBUFFERED=1
EXPOSE 8000
VOLUME /data
# liveness only (no database round trip); orchestrators should gate traffic on /readyz
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD curl -fsS "http://127.0.0.1:${AMBERWATCH_PORT}/healthz" || exit 1
# uvicorn and the worker both stop cleanly on SIGINT (the worker leaves no job running)
STOPSIGNAL SIGINT
CMD ["amberwatch", "serve"]
