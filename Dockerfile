# AmberWatch service image: Debian 12 + PostgreSQL 15/PostGIS 3 (embedded default) + MapServer 8 + the package.
# Not built on our build machines (no Docker engine there); see docs/operations.md.
FROM python:3.11-slim-bookworm

RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      postgresql-15 postgresql-15-postgis-3 mapserver-bin cgi-mapserver gdal-bin make \
 && rm -rf /var/lib/apt/lists/*

WORKDIR /app
COPY pyproject.toml README.md LICENSE ./
COPY service ./service
COPY models ./models
COPY ogc_config ./ogc_config
COPY demo ./demo
RUN pip install --no-cache-dir -e . \
 && useradd --create-home amberwatch && mkdir -p /data && chown amberwatch /data

USER amberwatch
ENV AMBERWATCH_DATA_DIR=/data AMBERWATCH_HOST=0.0.0.0 AMBERWATCH_PORT=8000
EXPOSE 8000
VOLUME /data
CMD ["amberwatch", "serve"]
