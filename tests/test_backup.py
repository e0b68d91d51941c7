"""Backup and restore (``amberwatch db backup --out DIR`` / ``amberwatch db restore DIR``): a store with a published
run and a stored scene is backed up, restored into a fresh data directory with its own embedded PostGIS, and the API
serves the same sites, detections and scene images from it."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import rasterio
from conftest import free_port, traversable
from fastapi.testclient import TestClient
from publish_helpers import MAPSERV, publish_polygons
from rasterio.transform import from_bounds
from rasterio.warp import transform_bounds
from shapely.geometry import box

from amberwatch.errors import InputError
from amberwatch.settings import Settings
from amberwatch.store.db import Store
from amberwatch.store.models import Scene
from amberwatch.usecases import backup as backup_uc

FOOTPRINT = box(26.00, 51.00, 26.03, 51.02)
CLI = [sys.executable, "-m", "amberwatch"]


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=180)


def environment(settings: Settings) -> dict[str, str]:
    """The process environment for the CLI on ``settings``' data directory and database."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AMBERWATCH_")}
    env.update(AMBERWATCH_DATA_DIR=str(settings.data_dir), AMBERWATCH_EMBEDDED_PG_PORT=str(settings.embedded_pg_port),
               AMBERWATCH_MAPSERV_BIN=str(settings.mapserv_bin))
    if settings.database_url:
        env["AMBERWATCH_DATABASE_URL"] = settings.database_url
    return env


def write_rgb_scene(path: Path) -> None:
    """A small real 3-band GeoTIFF (UTM 35N, 10 m) over the footprint, as ingest stores them."""
    bounds = transform_bounds("EPSG:4326", "EPSG:32635", *FOOTPRINT.buffer(0.002).bounds)
    width, height = int((bounds[2] - bounds[0]) / 10), int((bounds[3] - bounds[1]) / 10)
    data = np.random.default_rng(7).integers(200, 3000, size=(3, height, width), dtype=np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    with rasterio.open(path, "w", driver="GTiff", width=width, height=height, count=3, dtype="uint16",
                       crs="EPSG:32635", transform=from_bounds(*bounds, width, height)) as dst:
        dst.write(data)
        dst.descriptions = ("red", "green", "blue")


def served(settings: Settings, store: Store, site_ids: list[int] | None = None) -> dict[str, Any]:
    """What the API serves about the sites, detections and scene images."""
    from amberwatch.web.app import create_app

    with TestClient(create_app(settings, store, worker=False)) as client:
        sites = client.get("/api/sites", params={"limit": 1000})
        assert sites.status_code == 200, sites.text
        items = client.get("/ogcapi/collections/detections/items", params={"f": "json", "limit": 1000})
        assert items.status_code == 200, items.text
        ids = site_ids or [f["id"] if "id" in f else f["properties"]["id"] for f in _features(sites.json())]
        chips = {}
        for site_id in ids:
            chip = client.get(f"/api/sites/{site_id}/chips/after.png")
            assert chip.status_code == 200, chip.text
            chips[site_id] = hashlib.sha256(chip.content).hexdigest()
    features = sorted(items.json()["features"], key=lambda f: str(f.get("id")))
    return {"sites": sites.json(), "detections": [(f.get("id"), f["properties"], f["geometry"]) for f in features],
            "chips": chips}


def _features(doc: Any) -> list[dict[str, Any]]:
    return doc["features"] if isinstance(doc, dict) and "features" in doc else doc


@pytest.fixture(scope="module")
def source(make_database, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A store with one stored scene (a real GeoTIFF in its data directory) and a published run on it."""
    if MAPSERV is None:
        pytest.skip("mapserv not installed (apt-get install cgi-mapserver)")
    data_dir = tmp_path_factory.mktemp("backup-source")
    settings = Settings(data_dir=data_dir, database_url=make_database("aw_backup_source"), mapserv_bin=MAPSERV)
    store = Store(settings).start()
    run_id = publish_polygons(store, settings, "BACKUP_S2_20240601", datetime(2024, 6, 1, tzinfo=UTC), FOOTPRINT,
                              [box(26.005, 51.005, 26.008, 51.007), box(26.02, 51.012, 26.024, 51.015)])
    reflectance = data_dir / "scenes" / "BACKUP_S2_20240601" / "reflectance.tif"
    write_rgb_scene(reflectance)
    with store.session() as session:
        scene = session.query(Scene).filter_by(scene_key="BACKUP_S2_20240601").one()
        scene.reflectance_path, scene.bands, scene.crs = str(reflectance), ["red", "green", "blue"], "EPSG:32635"
    before = served(settings, store)
    assert len(_features(before["sites"])) == 2 and len(before["detections"]) == 2 and len(before["chips"]) == 2
    yield {"settings": settings, "store": store, "run_id": run_id, "served": before, "reflectance": reflectance}
    store.stop()


@pytest.fixture(scope="module")
def backup_dir(source: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("backups") / "first"
    res = cli(environment(source["settings"]), "db", "backup", "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert "backup in" in res.stdout
    return out


def test_backup_holds_the_dump_the_files_and_a_manifest_with_checksums(backup_dir: Path,
                                                                        source: dict[str, Any]) -> None:
    manifest = json.loads((backup_dir / "manifest.json").read_text())
    assert manifest["format"] == "amberwatch-backup/1"
    assert manifest["data_dir"] == str(source["settings"].data_dir.resolve())
    assert manifest["folders"] == ["scenes"]
    from amberwatch.usecases.health import migration_heads

    assert manifest["schema_revision"] == list(migration_heads())
    assert manifest["server_version"].startswith("15.") and manifest["postgis_version"]
    for name, entry in manifest["files"].items():
        assert hashlib.sha256((backup_dir / name).read_bytes()).hexdigest() == entry["sha256"], name
        assert (backup_dir / name).stat().st_size == entry["bytes"]
    listing = subprocess.run(["tar", "-tf", str(backup_dir / "files.tar")], capture_output=True, text=True).stdout
    assert "scenes/BACKUP_S2_20240601/reflectance.tif" in listing.splitlines()
    # a real pg_dump archive of the store
    toc = subprocess.run([str(source["settings"].pg_bin_dir / "pg_restore"), "--list",
                          str(backup_dir / "store.dump")], capture_output=True, text=True)
    assert toc.returncode == 0 and "TABLE DATA public detections" in toc.stdout


def test_restore_into_a_fresh_data_directory_serves_the_same_sites_and_detections(
        backup_dir: Path, source: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> None:
    target = traversable(tmp_path_factory.mktemp("backup-target"))
    settings = Settings(data_dir=target, embedded_pg_port=free_port(), mapserv_bin=MAPSERV)  # the embedded default
    env = environment(settings)
    res = cli(env, "db", "restore", str(backup_dir))
    store = Store(settings)
    try:
        assert res.returncode == 0, res.stderr
        assert "restored the backup" in res.stdout
        store.start()
        after = served(settings, store, list(source["served"]["chips"]))
        assert after == source["served"]
        # the scene's file came back under the new data directory, and the store points there
        moved = target / "scenes" / "BACKUP_S2_20240601" / "reflectance.tif"
        assert moved.read_bytes() == source["reflectance"].read_bytes()
        with store.session() as session:
            assert session.query(Scene).filter_by(scene_key="BACKUP_S2_20240601").one().reflectance_path == \
                str(moved)

        # a second restore into the same place is refused before anything is touched
        with pytest.raises(InputError, match="already has scenes"):
            backup_uc.restore(settings, backup_dir)

        # the restored embedded store backs up in turn
        second = backup_uc.backup(store, settings, backup_dir.parent / "second")
        assert second.manifest["data_dir"] == str(target.resolve())
        assert second.manifest["files"]["store.dump"]["bytes"] > 0
    finally:
        store.stop()


def test_a_damaged_or_foreign_backup_is_refused_before_any_work(backup_dir: Path, tmp_path: Path,
                                                                source: dict[str, Any]) -> None:
    damaged = tmp_path / "damaged"
    shutil.copytree(backup_dir, damaged)
    with (damaged / "files.tar").open("r+b") as f:
        f.seek(600)
        byte = f.read(1)
        f.seek(600)
        f.write(bytes([byte[0] ^ 0xFF]))
    fresh = Settings(data_dir=tmp_path / "fresh", embedded_pg_port=free_port(), mapserv_bin=MAPSERV)
    with pytest.raises(InputError, match="files.tar does not match the checksum") as err:
        backup_uc.restore(fresh, damaged)
    assert not (tmp_path / "fresh" / "postgres").exists()  # no cluster was made
    with pytest.raises(InputError, match="not a backup folder") as err:
        backup_uc.restore(fresh, tmp_path)
    assert str(tmp_path) not in str(err.value)  # names, not server paths
    with pytest.raises(InputError, match="must be new or empty"):
        backup_uc.backup(source["store"], source["settings"], damaged)
