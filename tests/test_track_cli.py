"""`amberwatch track` on the two demo dates: real ingest + detection + site tracking, sites written to GeoPackage."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyogrio
import pytest
from conftest import REPO

DEMOS = sorted((REPO / "demo").glob("S2_*amber_demo*.tif"))
pytestmark = pytest.mark.skipif(len(DEMOS) < 2, reason="needs the two demo dates in demo/")


def test_track_two_dates_in_any_order(tmp_path: Path, make_database) -> None:
    out = tmp_path / "sites.gpkg"
    env = {**os.environ, "AMBERWATCH_DATA_DIR": str(tmp_path), "AMBERWATCH_DATABASE_URL": make_database("aw_track")}
    # newest first on the command line: the command sorts by acquisition date
    res = subprocess.run([str(Path(sys.executable).parent / "amberwatch"), "track", str(DEMOS[1]), str(DEMOS[0]),
                          "--out", str(out)], env=env, capture_output=True, text=True, timeout=900)
    assert res.returncode == 0, res.stderr[-3000:]
    lines = [line for line in res.stdout.splitlines() if "run " in line]
    assert lines[0].startswith("2017-02-16") and lines[1].startswith("2018-03-10"), res.stdout
    info = pyogrio.read_info(out)
    assert info["crs"] == "EPSG:4326"
    fields = set(info["fields"])
    assert {"site_id", "status", "first_seen", "last_seen", "area_ha", "oblast", "raion"} <= fields
    meta, _, _, columns = pyogrio.raw.read(out, columns=["status", "first_seen"])
    statuses = dict(zip(meta["fields"], columns, strict=True))["status"]
    # the 2018 demo adds new sites and keeps/grows the 2017 ones (demo/README.md)
    assert {"new", "active"} <= set(statuses)
    truth_new = {f["properties"]["site_id"] for f in json.loads((REPO / "demo" / "truth_20180310.geojson")
                                                                  .read_text())["features"]
                 if f["properties"]["status"] == "new"}
    assert 0 < list(statuses).count("new") <= 2 * len(truth_new)
