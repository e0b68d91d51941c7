"""Validated labels feed the segmentation training: ``amberwatch train seg --labels labels.gpkg --scenes <tif>``.

The labels file has the layers and fields of ``amberwatch labels export`` (``labels``: confirmed pits, ``rejected``:
settled as not mining, ``class`` background, with a reason); its polygons are the demo scene's simulated pits and
confusers (demo/truth.geojson, demo/confusers.geojson), the scene is the real demo GeoTIFF. A tiny training run
(16 simulated chips, one epoch, no final evaluation) shows the label chips join the training set.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from conftest import REPO

pytest.importorskip("torch", reason="training needs the [train] extra")
SCENE = REPO / "demo" / "S2_L1C_T33UUU_20170216T102101_amber_demo.tif"
pytestmark = pytest.mark.skipif(not SCENE.exists(), reason="demo scene not built (demo/S2_*amber_demo*.tif)")
AMBERWATCH = Path(sys.executable).parent / "amberwatch"


def _labels(tmp: Path, positives: int = 6, negatives: int = 6) -> Path:
    """A GeoPackage with the layers and fields of ``amberwatch labels export`` (EPSG:4326)."""
    import pyogrio.raw
    import shapely

    from amberwatch.usecases.validation import NEGATIVES_LAYER, POSITIVES_LAYER

    out = tmp / "labels.gpkg"
    truth = json.loads((REPO / "demo" / "truth.geojson").read_text())["features"][:positives]
    confusers = json.loads((REPO / "demo" / "confusers.geojson").read_text())["features"][:negatives]
    for layer, feats, cls in ((POSITIVES_LAYER, truth, "pit"), (NEGATIVES_LAYER, confusers, "background")):
        geoms = [shapely.multipolygons(shapely.get_parts(shapely.geometry.shape(f["geometry"]))) for f in feats]
        fields = {"class": np.array([cls] * len(feats), dtype=object),
                  "reason": np.array([None if cls == "pit" else f["properties"]["kind"] for f in feats], dtype=object),
                  "item_id": np.arange(1, len(feats) + 1, dtype=np.int64),
                  "decided_via": np.array(["votes"] * len(feats), dtype=object)}
        pyogrio.raw.write(str(out), geometry=np.array(shapely.to_wkb(geoms), dtype=object),
                          field_data=list(fields.values()), fields=list(fields), crs="EPSG:4326",
                          geometry_type="MultiPolygon", driver="GPKG", layer=layer, append=out.exists())
    return out


def test_label_chips_are_cut_from_the_scene_in_model_band_order(tmp_path: Path) -> None:
    from amberwatch.errors import InputError
    from amberwatch_training.label_chips import label_chip_bank

    bank = label_chip_bank(_labels(tmp_path), [SCENE], "sentinel2")
    assert bank.positives >= 3 and bank.negatives >= 1, bank.scenes
    n = bank.positives + bank.negatives
    assert bank.x.shape == (n, 10, 72, 72) and bank.y.shape == (n, 72, 72) and bank.x.dtype == np.float32
    assert all(bank.y[i].any() for i in range(bank.positives))  # every positive chip holds pit pixels
    assert not bank.y[bank.positives:].any()  # negatives: label 0 everywhere
    assert set(np.unique(bank.y)) == {0, 1}
    with rasterio.open(SCENE) as src:  # reflectance = stored DN x 1e-4, blue = B02 (band 2)
        blue = src.read(2).astype(np.float32) * 1e-4
    first = bank.x[0, 0]
    starts = np.argwhere(np.abs(blue[:-71, :-71] - first[0, 0]) < 1e-7)  # where the chip's corner pixel could be
    assert any(np.allclose(blue[r:r + 72, c:c + 72], first) for r, c in starts), \
        "the first chip's blue band is not a window of the scene's B02 x 1e-4"

    from amberwatch_training.label_chips import scene_files

    scene_dir = tmp_path / "data" / "scenes" / "S2_DEMO"  # as ingested: reflectance.tif beside cloud_mask.tif
    scene_dir.mkdir(parents=True)
    (scene_dir / "reflectance.tif").symlink_to(SCENE)
    with rasterio.open(scene_dir / "cloud_mask.tif", "w", driver="GTiff", width=8, height=8, count=1, dtype="uint8",
                       crs="EPSG:32633", transform=rasterio.transform.from_origin(300_000, 5_800_000, 10, 10)) as dst:
        dst.write(np.zeros((1, 8, 8), np.uint8))
    assert scene_files([tmp_path / "data" / "scenes"], "sentinel2") == [scene_dir / "reflectance.tif"]

    far = tmp_path / "far"
    far.mkdir()
    with pytest.raises(InputError, match="no such scene"):
        label_chip_bank(_labels(far), [tmp_path / "missing.tif"], "sentinel2")
    with pytest.raises(InputError, match="not a readable GeoPackage of labels"):
        label_chip_bank(SCENE, [SCENE], "sentinel2")  # a GeoTIFF is not a labels file


def test_a_layer_with_no_polygon_on_the_scene_gives_no_chips_of_that_layer(tmp_path: Path) -> None:
    """Rejected polygons far off the scene: no negative chips (not an error), the positives still come."""
    import pyogrio.raw
    import shapely

    from amberwatch_training.chips import NoPolygonsError, chips_from_polygons
    from amberwatch_training.label_chips import NEGATIVES, label_chip_bank

    labels = _labels(tmp_path, negatives=0)
    far = shapely.multipolygons([shapely.box(0.0, 0.0, 0.01, 0.01)])  # off the coast of Africa
    pyogrio.raw.write(str(labels), geometry=np.array([shapely.to_wkb(far)], dtype=object),
                      field_data=[np.array(["background"], dtype=object)], fields=["class"], crs="EPSG:4326",
                      geometry_type="MultiPolygon", driver="GPKG", layer=NEGATIVES, append=True)
    with pytest.raises(NoPolygonsError, match="overlaps the raster"):
        chips_from_polygons(SCENE, labels, tmp_path / "chips", size=72, layer=NEGATIVES)
    bank = label_chip_bank(labels, [SCENE], "sentinel2")
    assert bank.positives >= 3 and bank.negatives == 0 and bank.scenes[SCENE.name]["negatives"] == 0


def test_train_seg_consumes_the_label_chips(tmp_path: Path) -> None:
    labels, out = _labels(tmp_path), tmp_path / "model"
    env = {**os.environ, "AMBERWATCH_DATA_DIR": str(tmp_path / "data")}
    run = subprocess.run([str(AMBERWATCH), "train", "seg", "--labels", str(labels), "--scenes", str(SCENE),
                          "--chips", "16", "--epochs", "1", "--eval-realizations", "0", "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=600)
    assert run.returncode == 0, run.stderr[-3000:]
    result = json.loads(run.stdout[run.stdout.index("{"):])
    chips = result["label_chips"]
    assert chips["positives"] >= 3 and chips["negatives"] >= 1, chips
    assert result["train_samples"] == 16 + chips["positives"] + chips["negatives"]  # the simulated ones plus these
    training = json.loads((out / "mlm.json").read_text())["properties"]["training"]
    assert training["train_samples"] == result["train_samples"] and "--labels" in training["command"]
    assert np.isfinite(training["history"][0]["loss"]) and training["history"][0]["loss"] > 0
    assert (out / "model.onnx").stat().st_size > 10_000

    from typer.testing import CliRunner

    from amberwatch.cli import app

    cli = CliRunner()  # bad input, in this process: refused before any chip is made
    bad = cli.invoke(app, ["train", "seg", "--labels", str(labels), "--out", str(tmp_path / "m2")], env=env)
    assert bad.exit_code == 2 and "--scenes" in bad.output, bad.output
    nowhere = cli.invoke(app, ["train", "seg", "--labels", str(labels), "--scenes", str(tmp_path), "--out",
                               str(tmp_path / "m3")], env=env)
    assert nowhere.exit_code == 2 and "no scene GeoTIFF" in nowhere.output, nowhere.output
    assert str(tmp_path) not in nowhere.output  # names, not server paths
    assert not (tmp_path / "m2").exists() and not (tmp_path / "m3").exists()
