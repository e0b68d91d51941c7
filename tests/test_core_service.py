"""Safe to put on the internet: keys and roles, audited writes, queued bounded runs, recovery after kill -9,
bodies capped before they are stored, rate limits, no leaks. A real `amberwatch serve` process, a real PostGIS."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from conftest import REPO, Listener, free_port, traversable
from sqlalchemy import create_engine, text

DEMO = sorted((REPO / "demo").glob("S2_*amber_demo*.tif"))
pytestmark = pytest.mark.skipif(not DEMO, reason="demo scene not built yet (demo/S2_*amber_demo*.tif)")
AMBERWATCH = str(Path(sys.executable).parent / "amberwatch")
TERMINAL = {"published", "failed"}


class Service:
    """``amberwatch serve`` as a child process (so that it can be killed with SIGKILL)."""

    def __init__(self, environ: dict[str, str], port: int, log: Path):
        self.environ, self.port, self.log = environ, port, log
        self.base = f"http://127.0.0.1:{port}"
        self.proc: subprocess.Popen | None = None

    def start(self) -> Service:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen([AMBERWATCH, "serve"], env=self.environ, stdout=out,
                                         stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, self.log.read_text()[-3000:]
            try:
                if httpx.get(self.base + "/health", timeout=2).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise AssertionError("service did not start: " + self.log.read_text()[-3000:])

    def kill9(self) -> None:
        assert self.proc is not None
        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.kill9()


def cli(environ: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([AMBERWATCH, *args], env=environ, capture_output=True, text=True, timeout=600)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory, make_database) -> dict:
    data_dir = tmp_path_factory.mktemp("core")
    url = make_database("amberwatch_core")
    port = free_port()
    environ = {**os.environ, "AMBERWATCH_DATA_DIR": str(data_dir), "AMBERWATCH_DATABASE_URL": url,
               "AMBERWATCH_PORT": str(port), "AMBERWATCH_ALLOWED_ROOTS": json.dumps([str(REPO / "demo")]),
               "AMBERWATCH_WORKER_CONCURRENCY": "1", "AMBERWATCH_JOB_STALLED_AFTER_S": "6",
               "AMBERWATCH_MAX_UPLOAD_MB": "1", "AMBERWATCH_RATE_LIMIT_WRITES": "1000/minute"}
    keys = {}
    for name, role in (("analyst-1", "analyst"), ("validator-1", "validator"), ("revoked-1", "analyst")):
        res = cli(environ, "keys", "create", name, "--role", role)
        assert res.returncode == 0, res.stderr
        keys[name] = res.stdout.strip().splitlines()[-1]  # the contract: the key is the last line
        assert keys[name].startswith("aw_")
    assert cli(environ, "keys", "revoke", "revoked-1").returncode == 0
    service = Service(environ, port, data_dir / "serve.log").start()
    yield {"environ": environ, "url": url, "data_dir": data_dir, "service": service, "keys": keys,
           "auth": {"Authorization": f"Bearer {keys['analyst-1']}"}}
    service.stop()


@pytest.fixture(scope="module")
def scene_id(env: dict) -> int:
    r = httpx.post(f"{env['service'].base}/api/scenes", headers=env["auth"], json={"path": str(DEMO[0])},
                   timeout=300)
    assert r.status_code == 201, r.text
    return r.json()["id"]


def wait_terminal(base: str, run_id: int, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            run = httpx.get(f"{base}/api/runs/{run_id}", timeout=5).json()
            if run["state"] in TERMINAL:
                return run
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise AssertionError(f"run {run_id} not finished within {timeout} s")


def test_keys_roles_and_audit(env: dict, scene_id: int) -> None:
    base, keys = env["service"].base, env["keys"]
    body = {"scene": scene_id}
    r = httpx.post(f"{base}/api/runs", json=body)
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    r = httpx.post(f"{base}/api/runs", json=body, headers={"Authorization": f"Bearer {keys['validator-1']}"})
    assert r.status_code == 403 and "validator" in r.json()["detail"]
    for bad in ("aw_not-a-key", keys["revoked-1"]):
        r = httpx.post(f"{base}/api/runs", json=body, headers={"Authorization": f"Bearer {bad}"})
        assert r.status_code == 401
    r = httpx.post(f"{base}/api/track", json={"paths": [str(DEMO[0])]})
    assert r.status_code == 401
    r = httpx.post(f"{base}/api/scenes", json={"path": str(DEMO[0])})
    assert r.status_code == 401
    # reads stay public
    assert httpx.get(f"{base}/api/runs").status_code == 200
    assert httpx.get(f"{base}/ows?SERVICE=WMS&REQUEST=GetCapabilities").status_code == 200
    assert httpx.get(f"{base}/api/events.atom").status_code == 200
    spec = httpx.get(f"{base}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["ApiKey"] == {
        "type": "http", "scheme": "bearer", "bearerFormat": "aw_…",
        "description": spec["components"]["securitySchemes"]["ApiKey"]["description"]}
    assert spec["paths"]["/api/runs"]["post"]["security"] == [{"ApiKey": []}]
    # who, what, when: the refused writes and the accepted ingest are in the audit log
    engine = create_engine(env["url"])
    with engine.connect() as conn:
        rows = conn.execute(text("select actor, role, action, status, at from audit_log order by id")).all()
    engine.dispose()
    assert ("anonymous", None, "POST /api/runs", 401) in [r[:4] for r in rows]
    assert ("validator-1", "validator", "POST /api/runs", 403) in [r[:4] for r in rows]
    assert ("analyst-1", "analyst", "POST /api/scenes", 201) in [r[:4] for r in rows]
    assert all(r.at is not None for r in rows)
    with engine.connect() as conn:  # only hashes are stored
        stored = conn.execute(text("select key_hash, prefix from api_keys")).all()
    assert not any(k in (h, p) for k in keys.values() for h, p in stored)


def test_ten_runs_are_queued_and_bounded(env: dict, scene_id: int) -> None:
    base = env["service"].base

    def post(_: int) -> dict:
        r = httpx.post(f"{base}/api/runs", headers=env["auth"], json={"scene": scene_id}, timeout=60)
        assert r.status_code == 202, r.text
        return r.json()

    with ThreadPoolExecutor(10) as pool:
        posted = list(pool.map(post, range(10)))
    ids = {r["id"] for r in posted}
    assert all(r["state"] in {"queued", "running", "published"} for r in posted)
    max_running, deadline = 0, time.monotonic() + 600
    states: dict[int, str] = {}
    while time.monotonic() < deadline:
        runs = httpx.get(f"{base}/api/runs", params={"limit": 50}, timeout=10).json()
        states = {r["id"]: r["state"] for r in runs if r["id"] in ids}
        max_running = max(max_running, sum(s == "running" for s in states.values()))
        if all(s in TERMINAL for s in states.values()) and len(states) == 10:
            break
        time.sleep(0.2)
    assert max_running <= 1, max_running  # AMBERWATCH_WORKER_CONCURRENCY=1
    assert set(states.values()) == {"published"}, states
    run = httpx.get(f"{base}/api/runs/{max(ids)}").json()  # each run stays addressable as a version
    items = httpx.get(run["layers"]["ogcapi"] + "&limit=10000").json()["features"]
    assert len(items) == run["n_detections"] > 0 and {f["properties"]["run_id"] for f in items} == {run["id"]}


def test_kill9_during_a_run_then_restart_recovers(env: dict, scene_id: int) -> None:
    service, base = env["service"], env["service"].base
    published = [r for r in httpx.get(f"{base}/api/runs").json() if r["state"] == "published"]
    if not published:  # run alone: publish one first
        r = httpx.post(f"{base}/api/runs?wait=true", headers=env["auth"], json={"scene": scene_id}, timeout=600)
        published = [r.json()]
        assert published[0]["state"] == "published", r.text
    earlier = published[0]["id"]
    n_earlier = len(httpx.get(f"{base}/ogcapi/collections/run_{earlier}/items?f=json&limit=5000").json()["features"])
    run = httpx.post(f"{base}/api/runs", headers=env["auth"], json={"scene": scene_id}).json()
    deadline = time.monotonic() + 120
    while httpx.get(f"{base}/api/runs/{run['id']}").json()["state"] != "running":
        assert time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    service.kill9()
    restarted = time.monotonic()
    service.start()
    final = wait_terminal(base, run["id"], timeout=60 - (time.monotonic() - restarted) + 30)
    assert final["state"] in TERMINAL
    assert time.monotonic() - restarted < 90  # start-up (~10 s) + within a minute
    items = httpx.get(f"{base}/ogcapi/collections/run_{earlier}/items?f=json&limit=5000").json()["features"]
    assert len(items) == n_earlier  # earlier layers intact
    if final["state"] == "published":
        assert final["message"].startswith("published")


def test_oversize_upload_is_refused_before_it_is_stored(env: dict) -> None:
    base, uploads = env["service"].base, env["data_dir"] / "uploads"
    big = b"\0" * (3 << 20)  # AMBERWATCH_MAX_UPLOAD_MB=1
    r = httpx.post(f"{base}/api/scenes", headers=env["auth"], files={"file": ("big.tif", big, "image/tiff")})
    assert r.status_code == 413 and "AMBERWATCH_MAX_UPLOAD_MB" in r.json()["detail"]

    def chunks():  # no Content-Length: the streaming cap applies
        yield b"--x\r\nContent-Disposition: form-data; name=\"file\"; filename=\"big.tif\"\r\n\r\n"
        for _ in range(24):
            yield b"\0" * (128 << 10)
        yield b"\r\n--x--\r\n"

    r = httpx.post(f"{base}/api/scenes", content=chunks(),
                   headers={**env["auth"], "Content-Type": "multipart/form-data; boundary=x"})
    assert r.status_code == 413, r.text
    assert not uploads.exists() or not any(p.is_file() for p in uploads.rglob("*"))
    assert httpx.get(f"{base}/health").status_code == 200


def test_hostile_urls_and_no_leaks(env: dict, scene_id: int) -> None:
    base = env["service"].base
    for url in ("/api/scenes/%00", "/api/runs?state=%00", "/ogcapi/collections/mining_sites/items?f=json&x=%00",
                "/api/scenes?offset=99999999999999999999", "/api/runs/99999999999"):
        r = httpx.get(base + url)
        assert 400 <= r.status_code < 500, (url, r.status_code, r.text)
        assert "Traceback" not in r.text and str(env["data_dir"]) not in r.text
    r = httpx.post(f"{base}/api/scenes", headers=env["auth"], json={"path": "/etc/passwd"})
    assert r.status_code == 403 and "/etc" not in r.text
    scenes = httpx.get(f"{base}/api/scenes").json()
    assert scenes and all("/" not in s["source"] for s in scenes)
    stac = httpx.get(f"{base}/api/scenes/{scenes[0]['id']}/stac").json()
    assert "/" not in stac["properties"]["amberwatch:source"]
    assert all("/" not in a["href"] for a in stac["assets"].values())


def test_rate_limit_on_writes(tmp_path: Path, store) -> None:
    from fastapi.testclient import TestClient

    from amberwatch.settings import Settings
    from amberwatch.web.app import create_app

    settings = Settings(data_dir=tmp_path, database_url=store.url, rate_limit_writes="3/minute", port=free_port())
    client = TestClient(create_app(settings, store, worker=False))
    codes = [client.post("/api/runs", json={"scene": 1}).status_code for _ in range(5)]
    assert codes[:3] == [401, 401, 401] and codes[3:] == [429, 429], codes
    assert client.get("/api/runs").status_code == 200  # plain reads are not limited


def test_health_does_not_leak_database_details(tmp_path: Path, store) -> None:
    from fastapi.testclient import TestClient

    from amberwatch.settings import Settings
    from amberwatch.web.app import create_app

    settings = Settings(data_dir=tmp_path, database_url=store.url, port=free_port())
    app = create_app(settings, store, worker=False)
    client = TestClient(app)
    assert client.get("/health").status_code == 200
    dead = free_port()
    original = store._engine
    store._engine = create_engine(f"postgresql+psycopg2://nobody@127.0.0.1:{dead}/nothing")  # the database is gone
    try:
        r = client.get("/health")
    finally:
        store._engine.dispose()
        store._engine = original
    assert r.status_code == 503
    assert str(dead) not in r.text and "127.0.0.1" not in r.text and "psycopg" not in r.text.lower()


def test_embedded_cluster_honours_its_port(tmp_path: Path) -> None:
    from amberwatch.store.embedded import EmbeddedPostgres

    root = traversable(tmp_path) / "pg"
    first, second = free_port(), free_port()
    db = EmbeddedPostgres(root, first)
    db.start()
    db.stop()
    again = EmbeddedPostgres(root, second)
    again.start()
    try:
        assert again.running_port() == second
        engine = create_engine(again.url)
        with engine.connect() as conn:
            assert conn.execute(text("select current_setting('port')")).scalar() == str(second)
        engine.dispose()
    finally:
        again.stop()


def test_a_run_whose_worker_died_too_often_is_failed_with_the_reason(env: dict, scene_id: int) -> None:
    from amberwatch.settings import Settings
    from amberwatch.store.db import Store
    from amberwatch.usecases import runs as runs_uc
    from amberwatch.usecases import scenes as scenes_uc

    settings = Settings(data_dir=env["data_dir"], database_url=env["url"], job_max_attempts=2)
    store = Store(settings).start(migrate=False)
    try:
        run = runs_uc.create_run(store, settings, scenes_uc.get_scene(store, scene_id))
        with store.engine.begin() as conn:  # two starts whose worker died (kill -9, out of memory)
            conn.execute(text("update runs set state = 'running', attempts = 2 where id = :id"), {"id": run.id})
        done = runs_uc.execute_run(store, settings, run.id)
        assert done.state == "failed" and "each of 2 attempts" in (done.error or "")
        assert runs_uc.execute_run(store, settings, run.id).state == "failed"  # idempotent: left as it is
    finally:
        store.stop()


def test_a_worker_claiming_the_run_before_it_is_marked_queued_keeps_it_running(env: dict, scene_id: int) -> None:
    """The worker's job can start before the API marks the run queued (defer, then mark): the API must not write
    'queued' over the worker's 'running' (seen as a run that stayed 'queued' while it ran, then 'published')."""
    import threading

    from amberwatch.settings import Settings
    from amberwatch.store.db import Store
    from amberwatch.store.queries import runs as run_queries
    from amberwatch.usecases import runs as runs_uc
    from amberwatch.usecases import scenes as scenes_uc

    settings = Settings(data_dir=env["data_dir"], database_url=env["url"])
    store = Store(settings).start(migrate=False)
    try:
        run = runs_uc.create_run(store, settings, scenes_uc.get_scene(store, scene_id))
        with store.session() as worker:  # the worker's claim, not yet committed
            assert run_queries.start_attempt(worker, run.id, settings.job_max_attempts)[0] == "start"
            worker.flush()
            api = threading.Thread(target=runs_uc.mark_queued, args=(store, run.id, 424242))
            api.start()
            api.join(0.5)
            assert api.is_alive()  # the API waits for the worker's row
        api.join(30)
        assert not api.is_alive()
        with store.session() as s:
            state = run_queries.get_one(s, run.id).state
            run_queries.mark_failed(s, run.id, "test run, never executed")  # leave no running run behind
        assert state == "running"
    finally:
        store.stop()


def vrt(source: str) -> bytes:
    return (f'<VRTDataset rasterXSize="64" rasterYSize="64"><SRS>EPSG:32633</SRS>'
            f'<GeoTransform>300000,10,0,5800000,0,-10</GeoTransform>'
            f'<VRTRasterBand dataType="Byte" band="1"><SimpleSource><SourceFilename relativeToVRT="0">{source}'
            f'</SourceFilename><SourceBand>1</SourceBand></SimpleSource></VRTRasterBand></VRTDataset>').encode()


def test_vrt_uploads_read_no_file_and_fetch_no_url(env: dict, listener: Listener) -> None:
    base, data_dir = env["service"].base, env["data_dir"]
    n_scenes = len(httpx.get(f"{base}/api/scenes").json())
    payloads = {
        "passwd.vrt": vrt("/etc/passwd"),
        "passwd.tif": vrt("/etc/passwd"),  # a VRT renamed .tif
        "ssrf.tif": vrt(f"/vsicurl/http://127.0.0.1:{listener.port}/x.tif"),
        "ssrf2.vrt": vrt(f"/vsicurl/http://127.0.0.1:{listener.port}/y.tif"),
    }
    for name, content in payloads.items():
        r = httpx.post(f"{base}/api/scenes", headers=env["auth"],
                       files={"file": (name, content, "application/octet-stream")}, timeout=60)
        assert 400 <= r.status_code < 500, (name, r.status_code, r.text)
        assert "root:" not in r.text and "/etc" not in r.text
    time.sleep(0.5)
    assert listener.connections == 0, "the server made an outbound request"
    assert len(httpx.get(f"{base}/api/scenes").json()) == n_scenes
    for tif in (data_dir / "scenes").rglob("*.tif") if (data_dir / "scenes").exists() else []:
        assert b"root:x:0:0" not in tif.read_bytes()


def test_wms_remote_sld_makes_no_request(env: dict, listener: Listener) -> None:
    base = env["service"].base
    for name in ("SLD", "sld"):
        r = httpx.get(f"{base}/ows", params={
            "SERVICE": "WMS", "VERSION": "1.3.0", "REQUEST": "GetMap", "LAYERS": "mining_sites", "STYLES": "",
            "CRS": "EPSG:4326", "BBOX": "52,12,53,13", "WIDTH": "64", "HEIGHT": "64", "FORMAT": "image/png",
            name: f"http://127.0.0.1:{listener.port}/style.sld"}, timeout=30)
        assert r.status_code < 500
    time.sleep(0.5)
    assert listener.connections == 0, "MapServer fetched the remote SLD"


def test_task_names_survive_several_queue_apps_in_one_process() -> None:
    """Every app registers the same task names (procrastinate renames a shared blueprint's tasks in place)."""
    from amberwatch.jobs.queue import RUN_TASK, TRACK_TASK, make_queue
    from amberwatch.worker.loop import register_tasks

    for _ in range(3):
        queue = make_queue("postgresql+psycopg2://nobody@127.0.0.1:1/none")
        register_tasks(queue)
        assert {RUN_TASK, TRACK_TASK} <= set(queue.tasks)
        assert not any(name.startswith("amberwatch:amberwatch:") for name in queue.tasks)


def test_a_run_whose_queue_job_died_is_failed_not_left_queued(env: dict, scene_id: int) -> None:
    import asyncio

    from amberwatch.jobs.queue import make_queue
    from amberwatch.settings import Settings
    from amberwatch.store.db import Store
    from amberwatch.usecases import runs as runs_uc
    from amberwatch.usecases import scenes as scenes_uc

    settings = Settings(data_dir=env["data_dir"], database_url=env["url"], inprocess_worker=False)
    store = Store(settings).start(migrate=False)
    queue = make_queue(store.url)
    try:
        run = runs_uc.create_run(store, settings, scenes_uc.get_scene(store, scene_id))
        with store.engine.begin() as conn:  # a queue job that failed before the run began (e.g. an unknown task)
            job_id = conn.execute(text(
                "insert into procrastinate_jobs (queue_name, task_name, args, status) "
                "values ('nobody-listens', 'amberwatch:run_detection', '{}', 'failed') returning id")).scalar()
            conn.execute(text("update runs set state = 'queued', queue_job_id = :j where id = :r"),
                         {"j": job_id, "r": run.id})

        async def recover() -> None:
            async with queue.open_async():
                await runs_uc.queue_orphans(queue, store, older_than_s=60)

        asyncio.run(recover())
        done = runs_uc.get_run(store, run.id)
        assert done.state == "failed" and "ended before the run started" in (done.error or "")
    finally:
        store.stop()


def test_tracking_is_a_queued_job(env: dict, scene_id: int) -> None:
    """POST /api/track queues a job; the worker ingests (reusing the stored scene), detects and reports the runs."""
    base = env["service"].base
    r = httpx.post(f"{base}/api/track", headers=env["auth"], json={"paths": [str(DEMO[0])]})
    assert r.status_code == 202 and r.json()["state"] in ("queued", "running"), r.text  # a free worker may start it
    job_id, deadline = r.json()["id"], time.monotonic() + 300
    while (job := httpx.get(f"{base}/api/jobs/{job_id}").json())["state"] not in ("succeeded", "failed"):
        assert time.monotonic() < deadline, job
        time.sleep(0.5)
    assert job["state"] == "succeeded" and job["progress"] == 1.0, job
    (run,) = job["result"]["runs"]
    assert run["scene_id"] == scene_id and sum(job["result"]["sites"].values()) > 0
    assert httpx.get(f"{base}/api/runs/{run['run_id']}").json()["state"] == "published"
