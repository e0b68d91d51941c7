"""Every published run reaches the STAC API at /stac by itself: the real ``amberwatch detect`` on a crop of the demo
scene, against its own database with the app (and /stac) served under uvicorn, and the run and its scene read back
from /stac (stac-fastapi-pgstac's items pages and pystac-client's search) with no ``stac sync``. A second publish
adds the new run beside the same scene item; publishing a run again changes nothing; a pgstac that refuses the items
leaves the run published with a warning naming it, and ``amberwatch stac sync`` repairs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import rasterio
from conftest import REPO, free_port, run_cli
from publish_helpers import uvicorn_thread
from pystac_client import Client
from rasterio.windows import Window
from sqlalchemy import text

from amberwatch.detect.registry import list_models
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.usecases.stac_catalog import MODELS, RUNS, SCENES

DEMO = REPO / "demo" / "S2_L1C_T33UUU_20180310T102021_amber_demo.tif"
CROP = Window(448, 240, 192, 192)  # simulated sites 6, 10, 26 and 27 of the 2018 demo (truth_20180310.geojson)
pytestmark = pytest.mark.skipif(not DEMO.exists(), reason="needs the demo scene in demo/")

# a BEFORE INSERT trigger on pgstac.items that refuses every item: pgstac failing for real, in a real transaction
REFUSE = """
create or replace function public.aw_test_refuse_item() returns trigger language plpgsql as
$$ begin raise exception 'pgstac is refusing items (test)'; end $$;
create trigger aw_test_refuse before insert on pgstac.items for each row execute function public.aw_test_refuse_item();
"""
ALLOW = "drop trigger aw_test_refuse on pgstac.items; drop function public.aw_test_refuse_item();"


def demo_crop(out: Path) -> Path:
    """A small multi-band crop of the demo scene with its band names and tags (date, sensor, level)."""
    with rasterio.open(DEMO) as src:
        profile = {**src.profile, "width": CROP.width, "height": CROP.height,
                   "transform": src.window_transform(CROP), "tiled": True, "blockxsize": 64, "blockysize": 64}
        path = out / DEMO.name
        with rasterio.open(path, "w", **profile) as dst:
            dst.write(src.read(window=CROP))
            dst.descriptions = src.descriptions
            dst.update_tags(**src.tags())
    return path


@pytest.fixture(scope="module")
def served(make_database, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Our app with /stac (no worker) on a fresh database, under uvicorn; the environment the CLI reads."""
    from amberwatch.web.app import create_app

    data = tmp_path_factory.mktemp("stac-autosync")
    url = make_database("aw_stac_autosync")
    settings = Settings(database_url=url, data_dir=data, port=free_port(), host="127.0.0.1", inprocess_worker=False)
    store = Store(settings).start()
    app = create_app(settings, store, worker=False)
    env = {"AMBERWATCH_DATABASE_URL": url, "AMBERWATCH_DATA_DIR": str(data), "AMBERWATCH_PORT": str(settings.port),
           "AMBERWATCH_HOST": "127.0.0.1", "AMBERWATCH_INPROCESS_WORKER": "false"}
    try:
        with uvicorn_thread(app, settings.port, "/stac/") as base:
            yield {"base": base, "store": store, "settings": settings, "env": env, "scene": demo_crop(data)}
    finally:
        store.stop()


def cli(env: dict[str, str], monkeypatch: pytest.MonkeyPatch, *args: str) -> Any:
    """The real command line in this process, in this test's environment."""
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    res = run_cli(*args, catch_exceptions=False)
    assert res.exit_code == 0, res.output[-3000:]
    return res


def detect(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch, scene: str) -> tuple[int, Any]:
    res = cli(served["env"], monkeypatch, "detect", scene)
    (line,) = [x for x in res.stdout.splitlines() if x.startswith("run ") and " published: " in x]
    return int(line.split()[1]), res


def stac_items(base: str, collection: str) -> dict[str, dict]:
    """The collection's items as /stac serves them (GET .../items), by id."""
    res = httpx.get(f"{base}/stac/collections/{collection}/items", params={"limit": 100}, timeout=30)
    assert res.status_code == 200, res.text
    page = res.json()
    assert not any(link["rel"] == "next" for link in page["links"]), "more than one page: raise the limit"
    return {f["id"]: f for f in page["features"]}


def without_links(items: dict[str, dict]) -> dict[str, dict]:
    return {k: {f: v for f, v in item.items() if f != "links"} for k, item in items.items()}


def test_published_runs_reach_stac_by_themselves(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from amberwatch.usecases import runs as runs_uc
    from amberwatch.usecases.stac_catalog import publish_run

    base, store, settings = served["base"], served["store"], served["settings"]
    assert httpx.get(f"{base}/stac/collections/{RUNS}").status_code == 404  # a fresh database: nothing synced yet
    # the model registry was put there when the app started: every version's MLM item, no sync needed
    registry = {f"{m.name}-{m.version}" for m in list_models(settings.models_dir)}
    assert registry and set(stac_items(base, MODELS)) == registry

    first, _ = detect(served, monkeypatch, str(served["scene"]))
    (scene_id,) = httpx.get(f"{base}/api/runs/{first}", timeout=30).json()["scene_ids"]
    scene_key = httpx.get(f"{base}/api/scenes/{scene_id}", timeout=30).json()["scene_key"]
    runs, scenes = stac_items(base, RUNS), stac_items(base, SCENES)
    assert set(runs) == {f"run-{first}"} and set(scenes) == {scene_key}
    item = runs[f"run-{first}"]
    assert item["properties"]["amberwatch:run_id"] == first
    assert item["properties"]["amberwatch:scene"] == scene_key
    assert item["properties"]["amberwatch:n_detections"] == runs_uc.get_run(store, first).n_detections > 0
    assert item["properties"]["datetime"].startswith("2018-03-10T10:20:21")
    assert scenes[scene_key]["properties"]["datetime"].startswith("2018-03-10T10:20:21")
    # a STAC client finds both by a search, with no sync in between
    client = Client.open(f"{base}/stac")
    found = {i.id: i.collection_id for i in client.search(collections=[RUNS, SCENES], max_items=50).items()}
    assert found == {f"run-{first}": RUNS, scene_key: SCENES}
    # the collections' spatial extent is the scenes' footprints (it was the whole world)
    for name in (RUNS, SCENES):
        (bbox,) = httpx.get(f"{base}/stac/collections/{name}", timeout=30).json()["extent"]["spatial"]["bbox"]
        assert bbox == pytest.approx(scenes[scene_key]["bbox"]), name

    # a second run of the same scene (given by its key): a new run item, still one scene item
    second, _ = detect(served, monkeypatch, scene_key)
    runs = stac_items(base, RUNS)
    assert set(runs) == {f"run-{first}", f"run-{second}"} and set(stac_items(base, SCENES)) == {scene_key}

    # publishing a run again (the hook once more; the run's job once more) duplicates nothing and changes nothing
    before = (stac_items(base, RUNS), stac_items(base, SCENES))
    assert publish_run(store, settings, first) is True
    assert runs_uc.execute_run(store, settings, first).state == "published"
    assert (stac_items(base, RUNS), stac_items(base, SCENES)) == before
    with store.session() as s:
        assert s.execute(text("select count(*) from pgstac.items where collection in (:r, :s)"),
                         {"r": RUNS, "s": SCENES}).scalar() == 3
    # the per-run items are the ones a full sync writes
    cli(served["env"], monkeypatch, "stac", "sync")
    assert without_links(stac_items(base, RUNS)) == without_links(before[0])
    assert without_links(stac_items(base, SCENES)) == without_links(before[1])


def test_a_failing_pgstac_never_fails_the_run(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    base, store = served["base"], served["store"]
    with store.session() as s:
        s.execute(text(REFUSE))
    try:
        run_id, res = detect(served, monkeypatch, str(served["scene"]))
    finally:
        with store.session() as s:
            s.execute(text(ALLOW))
    assert httpx.get(f"{base}/api/runs/{run_id}", timeout=30).json()["state"] == "published"
    assert f"run {run_id} is published but not in the STAC API at /stac" in res.stderr
    assert "pgstac is refusing items (test)" in res.stderr  # the cause, in the traceback of the warning
    assert f"run-{run_id}" not in stac_items(base, RUNS)
    sync = cli(served["env"], monkeypatch, "stac", "sync")
    assert "STAC API: " in sync.stdout
    runs = stac_items(base, RUNS)
    assert f"run-{run_id}" in runs and runs[f"run-{run_id}"]["properties"]["amberwatch:run_id"] == run_id


def test_no_items_when_stac_is_off(served: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    from amberwatch.usecases.stac_catalog import publish_run

    store, settings = served["store"], served["settings"]
    with store.session() as s:
        run_id = s.execute(text("select max(id) from runs where state = 'published'")).scalar()
    if run_id is None:  # this test alone
        run_id, _ = detect(served, monkeypatch, str(served["scene"]))
    with store.session() as s:
        s.execute(text("delete from pgstac.items where id = :i and collection = :c"), {"i": f"run-{run_id}", "c": RUNS})
    assert publish_run(store, settings.model_copy(update={"stac_api": False}), run_id) is False
    assert f"run-{run_id}" not in stac_items(served["base"], RUNS)
    assert publish_run(store, settings, run_id) is True
    assert f"run-{run_id}" in stac_items(served["base"], RUNS)
