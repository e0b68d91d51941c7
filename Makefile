# AmberWatch — see README.md. `make demo` runs everything on the embedded database; `make test` runs the suite.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
APT_PACKAGES := postgresql-15-postgis-3 mapserver-bin cgi-mapserver gdal-bin nginx-light spawn-fcgi \
  chromium poppler-utils fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz-subset0 \
  ffmpeg
export AMBERWATCH_PORT ?= 8000

.PHONY: install system-packages demo serve test lint bench train clean

install: system-packages $(BIN)/amberwatch portal

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do dpkg -s $$p >/dev/null 2>&1 || missing="$$missing $$p"; done; \
	if [ -n "$$missing" ]; then \
	  echo "installing system packages:$$missing"; \
	  SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends $$missing; \
	fi

$(BIN)/amberwatch: pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[test,train]'
	@touch $@

# the geoportal's scripts and styles: MapLibre GL and Chart.js from npm, bundled by esbuild (docs/portal.md)
PORTAL := service/amberwatch/portal
.PHONY: portal
portal: $(PORTAL)/static/.built

$(PORTAL)/static/.built: $(PORTAL)/package.json $(PORTAL)/package-lock.json $(wildcard $(PORTAL)/js/*.js) \
    $(wildcard $(PORTAL)/css/*.css)
	@command -v npm >/dev/null || { SUDO=$$( [ "$$(id -u)" = 0 ] || echo sudo ); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq --no-install-recommends \
	  nodejs npm; }
	cd $(PORTAL) && npm ci --no-audit --no-fund --loglevel=error && npm run build
	@touch $@

demo: install
	$(BIN)/amberwatch demo

serve: install
	$(BIN)/amberwatch serve

test: install
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/pytest -q tests

lint:
	$(BIN)/ruff check .

bench: install
	$(BIN)/python bench/bench_pipeline.py

clean:
	rm -rf var .pytest_cache
