"""Deployment: the Docker images and the compose file (checked statically: no Docker engine on these machines), the
compose topology run for real without Docker (API, ``amberwatch mapserv``, nginx through ``infra/compose/nginx.sh``),
``/healthz``, ``/readyz``, ``/metrics`` of a real ``amberwatch serve`` with a separate ``amberwatch worker`` (the
Prometheus multiprocess folder they share), and JSON log lines."""

from __future__ import annotations

import asyncio
import io
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Iterator
from datetime import UTC, datetime
from fnmatch import fnmatch
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import free_port, run_cli
from dockerfile_parse import DockerfileParser
from prometheus_client.parser import text_string_to_metric_families
from publish_helpers import MAPSERV, publish_polygons
from shapely.geometry import box

from amberwatch.settings import Settings
from amberwatch.store.db import Store

REPO = Path(__file__).resolve().parents[1]
COMPOSE_DIR = REPO / "infra" / "compose"
TEMPLATE = REPO / "infra" / "nginx" / "amberwatch.conf.template"
TOKEN = "metrics-token-for-tests"
TEST_ONLY_APT = {"chromium", "poppler-utils"}  # the test suite's browser and PDF reader: not in the images
CPU_IMAGE_ONLY_APT = {"gettext-base", "curl"}  # envsubst for nginx.sh, curl for health checks
# Dockerfile.gpu (Ubuntu 24.04, workers on an external PostGIS): no embedded database, MapServer or nginx
GPU_NOT_IN_IMAGE = {"postgresql-15-postgis-3", "mapserver-bin", "cgi-mapserver", "gdal-bin", "nginx-light",
                    "spawn-fcgi"}
GPU_IMAGE_ONLY_APT = {"python3", "python3-venv", "ca-certificates", "curl"}


# -- Dockerfiles ---------------------------------------------------------------------------------------------------

def makefile_apt_packages() -> set[str]:
    text = (REPO / "Makefile").read_text().replace("\\\n", " ")
    match = re.search(r"^APT_PACKAGES\s*:?=\s*(.+)$", text, flags=re.M)
    assert match, "APT_PACKAGES not found in the Makefile"
    return set(match.group(1).split())


def stages(path: Path) -> list[list[dict[str, Any]]]:
    """The instructions of each build stage (dockerfile-parse), ARG/comment lines dropped."""
    parser = DockerfileParser(fileobj=io.BytesIO(path.read_bytes()))
    out: list[list[dict[str, Any]]] = []
    for ins in parser.structure:
        if ins["instruction"] == "FROM":
            out.append([])
        if out:
            out[-1].append(ins)
    return out


def apt_packages(run_value: str) -> set[str]:
    """The packages of the ``apt-get install`` in one RUN."""
    words = shlex.split(run_value.replace("\\\n", " "))
    starts = [i for i in range(len(words) - 1) if words[i] == "apt-get" and "install" in words[i + 1:i + 3]]
    if not starts:
        return set()
    after = words[words.index("install", starts[0]) + 1:]
    pkgs: set[str] = set()
    for word in after:
        if word in ("&&", ";", "|"):
            break
        if not word.startswith("-"):
            pkgs.add(word)
    return pkgs


def dockerignored(source: str) -> bool:
    patterns = [p.strip() for p in (REPO / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    parts = Path(source).parts
    return any(fnmatch(source, p) or any(fnmatch("/".join(parts[:i]), p) for i in range(1, len(parts) + 1))
               for p in patterns)


@pytest.mark.parametrize("name", ["Dockerfile", "Dockerfile.gpu"])
def test_dockerfile_is_complete_and_pinned(name: str) -> None:
    path = REPO / name
    all_stages = stages(path)
    names = []
    for stage in all_stages:
        image, _, alias = stage[0]["value"].partition(" AS ")
        if image not in names:  # an image of the registry: pinned by a tag other than latest
            assert ":" in image and not image.endswith(":latest"), f"{name}: {image} is not pinned by tag"
        names.append(alias.strip())
        for ins in stage:
            if ins["instruction"] == "COPY":
                args = shlex.split(ins["value"])
                flags = [a for a in args if a.startswith("--")]
                sources = [a for a in args if not a.startswith("--")][:-1]
                source_stage = next((f.split("=", 1)[1] for f in flags if f.startswith("--from=")), None)
                if source_stage is not None:
                    assert source_stage in names, f"{name}: COPY --from={source_stage} before that stage"
                    continue
                for src in sources:
                    assert (REPO / src).exists(), f"{name}: COPY {src}: no such file in the repository"
                    assert not dockerignored(src), f"{name}: COPY {src} is excluded by .dockerignore"
    final = all_stages[-1]
    users = [i["value"].split(":")[0] for i in final if i["instruction"] == "USER"]
    assert users and users[-1] not in ("root", "0"), f"{name}: the final stage must run as a non-root USER"
    health = [i["value"] for i in final if i["instruction"] == "HEALTHCHECK"]
    assert len(health) == 1
    cmd = json.loads(next(i["value"] for i in final if i["instruction"] == "CMD"))
    env = " ".join(i["value"] for i in final if i["instruction"] == "ENV")
    for var in re.findall(r"\b(AMBERWATCH_[A-Z_]+)=", env):
        assert var[len("AMBERWATCH_"):].lower() in Settings.model_fields, f"{name}: ENV {var} is not a setting"
    # the geoportal bundle is built with npm inside the image, as `make portal` does
    portal = next(s for s in all_stages if " AS portal" in s[0]["value"])
    runs = " ".join(i["value"] for i in portal if i["instruction"] == "RUN")
    assert "npm ci" in runs and "npm run build" in runs
    package = json.loads((REPO / "service/amberwatch/portal/package.json").read_text())
    assert "build" in package["scripts"]
    installs = set().union(*(apt_packages(i["value"]) for i in final if i["instruction"] == "RUN"))
    required = makefile_apt_packages() - TEST_ONLY_APT
    if name == "Dockerfile":
        assert installs == required | CPU_IMAGE_ONLY_APT, "the image's apt packages drifted from APT_PACKAGES"
        assert "/healthz" in health[0]
        assert cmd == ["amberwatch", "serve"]
    else:
        assert installs == (required - GPU_NOT_IN_IMAGE) | GPU_IMAGE_ONLY_APT
        assert final[0]["value"].startswith("nvidia/cuda:") and "cudnn-runtime" in final[0]["value"]
        pip = " ".join(i["value"] for i in final if i["instruction"] == "RUN" and "pip" in i["value"])
        assert "[gpu]" in pip and "pip uninstall -y onnxruntime" in pip and "onnxruntime-gpu" in pip
        assert "amberwatch db check" in health[0]  # a worker image: no HTTP port
        assert cmd == ["amberwatch", "worker"]
    # the commands the health checks and CMD name exist
    assert_cli_command(cmd[1:])


def test_cpu_image_apt_packages_exist_in_debian_12() -> None:
    """The CPU image is Debian 12 like this machine: apt knows every package it installs."""
    final = stages(REPO / "Dockerfile")[-1]
    pkgs = sorted(set().union(*(apt_packages(i["value"]) for i in final if i["instruction"] == "RUN")))
    res = subprocess.run(["apt-cache", "show", "--no-all-versions", *pkgs], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert set(re.findall(r"^Package: (\S+)$", res.stdout, flags=re.M)) == set(pkgs)


def test_the_image_stages_build_the_portal_bundle_and_the_wheel(tmp_path: Path) -> None:
    """The Dockerfile's first two stages on the files they copy: ``npm ci && npm run build`` of the geoportal, then
    ``pip wheel --no-deps .`` with that bundle: the package with its templates, migrations and the built scripts,
    without node_modules."""
    if shutil.which("npm") is None:
        pytest.skip("npm not installed (make portal installs it)")
    portal_src = REPO / "service/amberwatch/portal"
    portal = tmp_path / "portal"
    portal.mkdir()
    for name in ("package.json", "package-lock.json"):
        shutil.copy(portal_src / name, portal / name)
    for folder in ("js", "css"):
        shutil.copytree(portal_src / folder, portal / folder)
    for step in (["npm", "ci", "--no-audit", "--no-fund", "--loglevel=error", "--prefer-offline"],
                 ["npm", "run", "build"]):
        res = subprocess.run(step, cwd=portal, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr[-2000:]
    src = tmp_path / "src"
    for rel in ("pyproject.toml", "README.md", "LICENSE"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes((REPO / rel).read_bytes())
    caches = shutil.ignore_patterns("__pycache__", "node_modules", "*.pyc")

    def ignore(folder: str, names: list[str]) -> set[str]:  # as .dockerignore: no prebuilt bundle in the context
        return caches(folder, names) | ({"static"} if Path(folder) == REPO / "service/amberwatch/portal" else set())

    shutil.copytree(REPO / "service", src / "service", ignore=ignore)
    shutil.copytree(REPO / "models" / "amberwatch_training", src / "models" / "amberwatch_training", ignore=caches)
    shutil.copytree(portal / "static", src / "service/amberwatch/portal/static")
    res = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                          "--wheel-dir", str(tmp_path / "wheels"), str(src)], capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stderr
    wheel = next((tmp_path / "wheels").glob("amberwatch-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("amberwatch/portal/static/js/map.js", "amberwatch/portal/static/css/portal.css",
                   "amberwatch/portal/templates/site.html", "amberwatch/store/migrations/script.py.mako",
                   "amberwatch/store/migrations/versions/0001_initial_schema.py", "amberwatch/cli/ops.py"):
        assert needed in names, needed
    assert not any("node_modules" in n for n in names)
    # every file of the package is in the wheel, but the sources of the bundle (built into portal/static)
    tracked = subprocess.run(["git", "ls-files", "service/amberwatch"], cwd=REPO, capture_output=True, text=True,
                             check=True).stdout.split()
    bundle_sources = re.compile(r"^amberwatch/portal/(js/|css/|package(-lock)?\.json$|\.gitignore$)")
    missing = sorted(rel for f in tracked if (rel := f.removeprefix("service/")) not in names
                     and not bundle_sources.match(rel) and "node_modules" not in rel)
    assert not missing, f"files of the package the image would not have (pyproject package-data): {missing}"


# -- compose -------------------------------------------------------------------------------------------------------

def compose() -> dict[str, Any]:
    return yaml.safe_load((COMPOSE_DIR / "compose.yaml").read_text())


def assert_cli_command(words: list[str]) -> None:
    """``amberwatch WORDS...`` names a command of our CLI (options after the command words are ignored)."""
    import typer.main

    from amberwatch.cli import app

    group: Any = typer.main.get_command(app)
    for word in words:
        if word.startswith("-") or not hasattr(group, "commands"):
            break
        assert word in group.commands, f"amberwatch {' '.join(words)}: no command {word!r}"
        group = group.commands[word]


def env_file_names(path: Path) -> list[str]:
    """Variable names in an env file, commented-out examples (``# NAME=value``) included."""
    return re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", path.read_text(), flags=re.M)


def test_compose_file_parses_and_references_what_exists() -> None:
    doc = compose()
    services = doc["services"]
    assert {"db", "api", "worker", "mapserver", "nginx", "geoserver", "dask-scheduler", "dask-worker",
            "worker-gpu"} <= set(services)
    assert services["geoserver"]["profiles"] == ["geoserver"]
    assert services["dask-scheduler"]["profiles"] == services["dask-worker"]["profiles"] == ["dask"]
    assert services["worker-gpu"]["profiles"] == ["gpu"]
    volumes = set(doc["volumes"])
    for name, svc in services.items():
        assert "image" in svc or "build" in svc, name
        if "build" in svc:
            context = (COMPOSE_DIR / svc["build"]["context"]).resolve()
            assert context == REPO and (context / svc["build"].get("dockerfile", "Dockerfile")).is_file(), name
        image = svc.get("image", "")
        if not image.startswith("amberwatch"):
            assert re.search(r":[\w.-]+$", image) and not image.endswith(":latest"), f"{name}: pin {image}"
        for dep in svc.get("depends_on", {}):
            assert dep in services, f"{name} depends on unknown {dep}"
        for vol in svc.get("volumes", []):
            assert vol.split(":")[0] in volumes, f"{name}: undeclared volume {vol}"
        for env_file in svc.get("env_file", []):
            assert (COMPOSE_DIR / env_file).is_file(), env_file
        command = svc.get("command") or []
        if command[:1] == ["amberwatch"]:
            assert_cli_command(command[1:])
        healthcheck = (svc.get("healthcheck") or {}).get("test") or []
        if healthcheck[1:2] == ["amberwatch"]:
            assert_cli_command(healthcheck[2:])
    assert services["worker"]["command"] == ["amberwatch", "worker"]
    assert services["api"]["healthcheck"]["test"][-1].endswith("/readyz")
    assert (COMPOSE_DIR / "nginx.sh").stat().st_mode & 0o111
    assert services["nginx"]["command"] == ["/app/infra/compose/nginx.sh"]


def test_compose_environment_uses_known_settings_and_documented_variables() -> None:
    doc = compose()
    names: set[str] = set(env_file_names(COMPOSE_DIR / "amberwatch.env"))
    for svc in doc["services"].values():
        names |= set(svc.get("environment") or {})
    ours = {n for n in names if n.startswith("AMBERWATCH_")}
    assert "AMBERWATCH_DATABASE_URL" in ours
    unknown = sorted(n for n in ours if n[len("AMBERWATCH_"):].lower() not in Settings.model_fields)
    assert not unknown, f"not settings of amberwatch.settings.Settings: {unknown}"
    # nginx's AW_* variables are exactly the placeholders of the template
    placeholders = set(re.findall(r"\$\{(AW_[A-Z_]+)\}", TEMPLATE.read_text()))
    nginx_env = set(doc["services"]["nginx"]["environment"])
    assert placeholders - {"AW_NGINX_USER"} == nginx_env
    # every ${VAR} compose interpolates is documented in example.env
    used = set(re.findall(r"\$\{([A-Z_]+)[:?}-]", (COMPOSE_DIR / "compose.yaml").read_text()))
    assert used <= set(env_file_names(COMPOSE_DIR / "example.env")), used - set(env_file_names(COMPOSE_DIR /
                                                                                              "example.env"))


# -- a real deployment on this machine: serve + worker + mapserv + nginx ---------------------------------------------

def http(url: str, headers: dict[str, str] | None = None) -> tuple[int, Any, bytes]:
    """Status, headers (case-insensitive) and body of a GET."""
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=30) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as err:
        return err.code, err.headers, err.read()


def wait_for(url: str, proc: subprocess.Popen[Any], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"{url}: the process exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).read()
            return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.3)
    pytest.fail(f"{url} did not answer within {timeout:.0f} s:\n{log.read_text()[-3000:]}")


def stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)


def metrics(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    status, headers, body = http(f"{url}/metrics", {"Authorization": f"Bearer {TOKEN}"})
    assert status == 200 and headers["Content-Type"].startswith("text/plain"), body[:300]
    out = {}
    for family in text_string_to_metric_families(body.decode()):
        for s in family.samples:
            out[(s.name, frozenset((k, v) for k, v in s.labels.items() if k != "pid"))] = \
                out.get((s.name, frozenset((k, v) for k, v in s.labels.items() if k != "pid")), 0.0) + s.value
    return out


def value(samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str) -> float:
    """The sum of the samples ``name`` whose labels include ``labels``."""
    want = set(labels.items())
    return sum(v for (n, lab), v in samples.items() if n == name and want <= lab)


@pytest.fixture(scope="module")
def deployment(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """``amberwatch serve --no-worker`` on a fresh database, as the compose ``api`` service runs it: JSON logs,
    a metrics token, the Prometheus multiprocess folder."""
    if MAPSERV is None:
        pytest.skip("mapserv not installed (apt-get install cgi-mapserver)")
    root = tmp_path_factory.mktemp("deployment")
    os.chmod(root, 0o755)
    url = make_database("aw_deployment")
    settings = Settings(data_dir=root / "data", database_url=url, mapserv_bin=MAPSERV)
    store = Store(settings).start()  # migrated before the processes start (compose: the api service)
    (root / "metrics").mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AMBERWATCH_", "PROMETHEUS_"))}
    port = free_port()
    env.update(AMBERWATCH_DATABASE_URL=url, AMBERWATCH_DATA_DIR=str(root / "data"), AMBERWATCH_PORT=str(port),
               AMBERWATCH_HOST="127.0.0.1", AMBERWATCH_LOG_FORMAT="json", AMBERWATCH_METRICS_TOKEN=TOKEN,
               AMBERWATCH_MAPSERV_BIN=MAPSERV, AMBERWATCH_MAPSERV_WORKERS="1", AMBERWATCH_STAC_API="false",
               PROMETHEUS_MULTIPROC_DIR=str(root / "metrics"))
    log = root / "serve.log"
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "amberwatch", "serve", "--no-worker"], env=env,
                                stdout=subprocess.DEVNULL, stderr=err)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(f"{base}/healthz", proc, log)
        yield {"url": base, "env": env, "root": root, "log": log, "store": store, "settings": settings,
               "proc": proc}
    finally:
        stop(proc)
        store.engine.dispose()


def test_healthz_is_cheap_and_readyz_checks_everything(deployment: dict[str, Any]) -> None:
    status, _, body = http(f"{deployment['url']}/healthz")
    assert status == 200 and json.loads(body)["status"] == "ok"
    status, headers, body = http(f"{deployment['url']}/readyz")
    doc = json.loads(body)
    assert status == 200, doc
    assert doc["status"] == "ready" and doc["reasons"] == []
    assert {"database", "migrations", "mapserver", "queue", "workers"} == set(doc["checks"])
    assert all(check["ok"] for check in doc["checks"].values())
    assert doc["checks"]["workers"] == {"ok": True, "live": 0, "required": False}  # serve --no-worker
    assert headers["Cache-Control"] == "no-store"


def test_readiness_names_what_is_missing(deployment: dict[str, Any], make_database) -> None:
    from amberwatch.usecases.health import MapServerState, readiness

    installed = MapServerState(True, True, "cgi")
    # no live worker although this process is meant to run one, and no MapServer
    result = readiness(deployment["store"], None, worker_required=True, heartbeat_within_s=20)
    assert not result.ready
    assert any(r.startswith("workers: no job worker sent a heartbeat") for r in result.reasons), result.reasons
    assert "mapserver: mapserv is not installed: /ows cannot answer" in result.reasons
    # a database that is not migrated
    bare = Store(Settings(database_url=make_database("aw_deployment_bare"))).start(migrate=False)
    try:
        result = readiness(bare, installed, worker_required=False, heartbeat_within_s=20)
        assert [r.split(":")[0] for r in result.reasons] == ["database", "migrations", "queue"], result.reasons
        assert result.reasons[0] == "database: the PostGIS extension is missing"
        assert "schema at no revision" in result.reasons[1] and "run `amberwatch db start`" in result.reasons[1]
    finally:
        bare.engine.dispose()
    # a database that does not answer: one reason, no server detail
    gone = Store(Settings(database_url=f"postgresql+psycopg2://nobody@127.0.0.1:{free_port()}/nothing"))
    gone.start(migrate=False)
    result = readiness(gone, installed, worker_required=False, heartbeat_within_s=20)
    assert result.reasons == ["database: the database does not answer"]


def test_metrics_need_the_token_when_one_is_set(deployment: dict[str, Any]) -> None:
    status, headers, body = http(f"{deployment['url']}/metrics")
    assert status == 401 and "AMBERWATCH_METRICS_TOKEN" in json.loads(body)["detail"]
    status, _, _ = http(f"{deployment['url']}/metrics", {"Authorization": "Bearer wrong"})
    assert status == 401


def test_requests_are_counted_by_route_template(deployment: dict[str, Any]) -> None:
    url = deployment["url"]
    before = metrics(url)
    for site in (987654, 987655):
        assert http(f"{url}/api/sites/{site}")[0] == 404
    assert http(f"{url}/ogcapi/collections/mining_sites/items?f=json&limit=1")[0] == 200
    after = metrics(url)
    route = {"method": "GET", "route": "/api/sites/{site_id}", "status": "404"}
    assert value(after, "amberwatch_http_requests_total", **route) - \
        value(before, "amberwatch_http_requests_total", **route) == 2
    hist = {"method": "GET", "route": "/api/sites/{site_id}"}
    assert value(after, "amberwatch_http_request_duration_seconds_count", **hist) - \
        value(before, "amberwatch_http_request_duration_seconds_count", **hist) == 2
    assert value(after, "amberwatch_http_requests_total",
                 route="/ogcapi/collections/{collection_id}/items", status="200") >= 1
    assert not any("987654" in v for (_, labels) in after for _, v in labels)  # never the raw path


def test_scenes_and_runs_are_read_from_the_store(deployment: dict[str, Any]) -> None:
    before = metrics(deployment["url"])
    publish_polygons(deployment["store"], deployment["settings"], "DEPLOY_S2_20240601",
                     datetime(2024, 6, 1, tzinfo=UTC), box(26.0, 51.0, 26.03, 51.02),
                     [box(26.005, 51.005, 26.008, 51.007)])
    after = metrics(deployment["url"])
    assert value(after, "amberwatch_scenes_ingested_total") - value(before, "amberwatch_scenes_ingested_total") == 1
    assert value(after, "amberwatch_scenes_processed_total") - value(before, "amberwatch_scenes_processed_total") == 1
    assert value(after, "amberwatch_runs", state="published") - value(before, "amberwatch_runs", state="published") == 1
    assert value(after, "amberwatch_store_up") == 1


def test_jobs_of_a_separate_worker_process_are_timed_and_the_queue_is_counted(deployment: dict[str, Any]) -> None:
    from amberwatch.jobs.queue import ALERT_SCAN_TASK, defer, make_queue

    url, env = deployment["url"], deployment["env"]

    async def queue_a_scan() -> None:
        queue = make_queue(env["AMBERWATCH_DATABASE_URL"])
        async with queue.open_async():
            await defer(queue, ALERT_SCAN_TASK, "deployment-test-scan")

    asyncio.run(queue_a_scan())
    queued = metrics(url)
    assert value(queued, "amberwatch_queue_jobs", queue="amberwatch", status="todo") >= 1
    done = {"task": "amberwatch:scan_alerts", "outcome": "succeeded"}
    assert value(queued, "amberwatch_job_duration_seconds_count", **done) == 0

    log = deployment["root"] / "worker.log"
    with log.open("w") as err:
        worker = subprocess.Popen([sys.executable, "-m", "amberwatch", "worker"], env=env, stdout=subprocess.DEVNULL,
                                  stderr=err)
    try:
        deadline = time.monotonic() + 90
        while True:
            now = metrics(url)
            if value(now, "amberwatch_job_duration_seconds_count", **done) >= 1:
                break
            assert worker.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.5)
        assert value(now, "amberwatch_job_duration_seconds_sum", **done) > 0
        assert value(now, "amberwatch_workers_live") >= 1
        status, _, body = http(f"{url}/readyz")
        assert status == 200 and json.loads(body)["checks"]["workers"]["live"] >= 1
    finally:
        stop(worker)
    assert worker.returncode == 0, log.read_text()[-3000:]
    deployment["worker_log"] = log


def json_lines(path: Path) -> list[dict[str, Any]]:
    lines = [line for line in path.read_text().splitlines() if line.strip()]
    assert lines, f"{path.name} is empty"
    records = []
    for line in lines:
        record = json.loads(line)  # every line is one JSON object
        assert {"time", "level", "logger", "message", "request_id"} <= set(record), line
        datetime.fromisoformat(record["time"])
        records.append(record)
    return records


def test_logs_are_one_json_object_per_line_with_the_request_id(deployment: dict[str, Any]) -> None:
    url = deployment["url"]
    status, headers, _ = http(f"{url}/api/sites/424242", {"X-Request-ID": "deploy-test-1"})
    assert status == 404 and headers["X-Request-ID"] == "deploy-test-1"
    _, headers, _ = http(f"{url}/healthz", {"X-Request-ID": "not a token; <script>"})
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])  # replaced, not echoed
    deadline = time.monotonic() + 10
    while True:
        records = json_lines(deployment["log"])
        access = [r for r in records if r["logger"] == "uvicorn.access" and "/api/sites/424242" in r["message"]]
        if access or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert access and access[0]["request_id"] == "deploy-test-1" and access[0]["level"] == "INFO"
    assert any(r["logger"].startswith("amberwatch") for r in records)
    if "worker_log" in deployment:
        assert any(r["logger"] == "amberwatch.worker.loop" for r in json_lines(deployment["worker_log"]))


def test_compose_topology_nginx_in_front_of_mapserv_and_the_api(deployment: dict[str, Any]) -> None:
    """nginx (infra/compose/nginx.sh and the template) sends GET /ows to ``amberwatch mapserv``'s FastCGI workers
    and the rest to the API; /metrics stays internal."""
    if not Path("/usr/sbin/nginx").exists():
        pytest.skip("nginx not installed (apt-get install nginx-light)")
    root, env = deployment["root"], dict(deployment["env"])
    run_dir = root / "run"
    run_dir.mkdir()
    socket_path = run_dir / "mapserv.sock"
    ms_log, nginx_log = root / "mapserv.log", root / "nginx.log"
    with ms_log.open("w") as err:
        mapserv = subprocess.Popen([sys.executable, "-m", "amberwatch", "mapserv", "--socket", str(socket_path),
                                    "--workers", "1"], env=env, stdout=err, stderr=err)
    port = free_port()
    nginx_env = {**env, "AW_APP_HOST": "127.0.0.1", "AW_APP_PORT": deployment["url"].rsplit(":", 1)[1],
                 "AW_LISTEN": f"127.0.0.1:{port}", "AW_RUN_DIR": str(run_dir),
                 "AW_OGC_DIR": str(root / "data" / "ogc"), "AW_MAX_UPLOAD_MB": "10",
                 "AW_NGINX_USER": "user root;" if os.geteuid() == 0 else ""}
    nginx = None
    try:
        deadline = time.monotonic() + 60
        while not socket_path.exists():
            assert mapserv.poll() is None and time.monotonic() < deadline, ms_log.read_text()
            time.sleep(0.2)
        api_ows_before = value(metrics(deployment["url"]), "amberwatch_http_requests_total", route="/ows")
        with nginx_log.open("w") as err:
            nginx = subprocess.Popen([str(COMPOSE_DIR / "nginx.sh")], env=nginx_env, stdout=err, stderr=err)
        front = f"http://127.0.0.1:{port}"
        wait_for(f"{front}/healthz", nginx, nginx_log, timeout=30)
        status, headers, body = http(f"{front}/ows?SERVICE=WMS&REQUEST=GetCapabilities")
        assert status == 200 and b"WMS_Capabilities" in body, body[:500]
        assert b"mining_sites" in body
        assert http(f"{front}/metrics", {"Authorization": f"Bearer {TOKEN}"})[0] == 404
        status, _, body = http(f"{front}/readyz")
        assert status == 200 and json.loads(body)["status"] == "ready"
        # the API itself answered no GET /ows: mapserv behind nginx did
        assert value(metrics(deployment["url"]), "amberwatch_http_requests_total", route="/ows") == api_ows_before
    finally:
        if nginx is not None:
            stop(nginx)
        mapserv.send_signal(signal.SIGTERM)
        mapserv.wait(timeout=20)
    assert mapserv.returncode == 0, ms_log.read_text()
    assert not socket_path.exists()


def test_a_bad_log_format_is_a_clear_cli_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AMBERWATCH_LOG_FORMAT", "xml")
    res = run_cli("models", "list")
    assert res.exit_code == 2, res.output
    assert "error: invalid settings: AMBERWATCH_LOG_FORMAT: Input should be 'text' or 'json'" in res.output
    assert res.exception is None or isinstance(res.exception, SystemExit)


def test_route_templates_in_one_process() -> None:
    """Without the multiprocess folder (``make demo``): this process's counters, labelled by the template of the
    route that answered — in a router included with a prefix, in a mounted app, or ``<unmatched>``."""
    from fastapi import APIRouter, FastAPI
    from fastapi.testclient import TestClient
    from prometheus_client import CollectorRegistry
    from starlette.applications import Starlette
    from starlette.responses import PlainTextResponse
    from starlette.routing import Route

    from amberwatch.observability.metrics import HttpMetrics, exposition

    assert "PROMETHEUS_MULTIPROC_DIR" not in os.environ
    router = APIRouter()

    @router.get("/things/{thing_id}")
    def thing(thing_id: int) -> dict[str, int]:
        return {"id": thing_id}

    app = FastAPI()
    app.include_router(router, prefix="/api/v9")
    app.mount("/sub", Starlette(routes=[Route("/items/{item}", lambda r: PlainTextResponse("x"))]))
    app.add_middleware(HttpMetrics)

    def count(**labels: str) -> float:
        text = exposition(CollectorRegistry()).decode()
        return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples
                   if s.name == "amberwatch_http_requests_total" and set(labels.items()) <= set(s.labels.items()))

    before = {r: count(route=r) for r in ("/api/v9/things/{thing_id}", "/sub/items/{item}", "<unmatched>")}
    with TestClient(app) as client:
        assert client.get("/api/v9/things/17").status_code == 200
        assert client.get("/api/v9/things/18").status_code == 200
        assert client.post("/api/v9/things/18").status_code == 405
        assert client.get("/sub/items/abc").status_code == 200
        assert client.get("/no/such/path/4711").status_code == 404
    assert count(route="/api/v9/things/{thing_id}", status="405") >= 1
    assert count(route="/api/v9/things/{thing_id}") - before["/api/v9/things/{thing_id}"] == 3
    assert count(route="/sub/items/{item}") - before["/sub/items/{item}"] == 1
    assert count(route="<unmatched>") - before["<unmatched>"] == 1
    text = exposition(CollectorRegistry()).decode()
    label_values = {v for f in text_string_to_metric_families(text) for s in f.samples for v in s.labels.values()}
    assert not any("4711" in v or "things/17" in v or "/no/such" in v for v in label_values)
