"""VHR classifier (Texty method): registered ONNX model, chip scoring CLI, tiny training, detect_vhr on a GeoTIFF.

Tests that need the internal Texty chips read them from ../shared/data (never copied into the repository; a few
are copied into tmp_path) and skip with the reason when they are absent.
"""

from __future__ import annotations

import csv
import json
import shutil
import sys
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared
from typer.testing import CliRunner

from amberwatch.cli.vhr import app as vhr_app
from amberwatch.errors import InputError
from amberwatch.vhr import detect_vhr, load_vhr_model, score_chips, score_image
from amberwatch.vhr.io import read_rgb

if str(REPO / "models") not in sys.path:  # amberwatch_training, when the package is not installed
    sys.path.append(str(REPO / "models"))

REGISTRY = REPO / "models" / "registry" / "vhr-texty"
F1_MARGIN = 0.02  # held-out F1 may drift this much (onnxruntime/numeric versions) before the test fails


def registered_versions() -> list[Path]:
    """Every registered vhr-texty version folder, lowest to highest version (the registry's own order)."""
    from amberwatch.detect.registry import list_models

    return [m.path for m in list_models(REGISTRY.parent) if m.name == "vhr-texty" and m.onnx_path.is_file()]


VERSIONS = registered_versions()
MODEL_DIR = VERSIONS[-1] if VERSIONS else REGISTRY / "missing"  # the newest version: what detect uses by default


def chips_dir() -> Path:
    return shared("vhr", "texty-chips")


@pytest.fixture(scope="module")
def model():
    assert (MODEL_DIR / "model.onnx").is_file(), f"registered model missing: {MODEL_DIR}"
    return load_vhr_model(MODEL_DIR)


def test_registered_model_card_and_session(model) -> None:
    props = json.loads((MODEL_DIR / "mlm.json").read_text())["properties"]
    assert props["amberwatch:family"] == "vhr_rgb"
    assert props["mlm:name"] == "vhr-texty"
    assert props["amberwatch:version"] == MODEL_DIR.name
    assert model.version == MODEL_DIR.name and model.input_kind == props["amberwatch:input_kind"]
    assert 0.0 < props["amberwatch:threshold"] < 1.0
    assert model.threshold == pytest.approx(props["amberwatch:threshold"])
    assert model.session.get_providers()[0] == model.provider
    rng = np.random.default_rng(0)
    p = score_image(rng.integers(0, 256, (200, 220, 3), dtype=np.uint8), MODEL_DIR)
    assert 0.0 <= p <= 1.0


@pytest.fixture(scope="module")
def held_out() -> tuple[list[Path], np.ndarray, np.ndarray, str]:
    """Held-out test chips (paths, labels), their feature matrix and the digest of their tile list."""
    from amberwatch.vhr.features import extract_features
    from amberwatch_training.vhr.dataset import load_chipset, test_mask, tile_groups, tiles_digest

    chips = load_chipset(chips_dir())
    held = np.flatnonzero(test_mask(chips, tile_groups(chips.tiles)))
    paths = [chips.paths[i] for i in held]
    feats = np.stack([extract_features(read_rgb(p)) for p in paths]).astype(np.float32)
    return paths, chips.labels[held], feats, tiles_digest(chips.tiles[held])


@pytest.mark.parametrize("version_dir", VERSIONS, ids=[p.name for p in VERSIONS])
def test_registered_models_held_out_f1_do_not_regress(version_dir: Path, held_out) -> None:
    """Recompute the held-out (test-tile) F1 of every registered version (1.0.0 stays loadable and scored) through
    its ONNX session; it must stay near what training measured on the same tiles."""
    pytest.importorskip("sklearn")
    from sklearn.metrics import f1_score

    paths, labels, feats, digest = held_out
    model = load_vhr_model(version_dir)
    recorded = json.loads((version_dir / "metrics.json").read_text())["held_out"]
    assert digest == recorded["tiles_sha256"], "held-out tiles differ from training's"
    if model.input_kind == "features":
        p = np.asarray(model.session.run(None, {model.session.get_inputs()[0].name: feats})[1])[:, 1]
    else:
        p = np.array([model.score(read_rgb(f)) for f in paths])
    assert p.shape == labels.shape and np.all((p >= 0) & (p <= 1))
    f1 = f1_score(labels, p >= model.threshold)
    assert f1 >= recorded["f1"] - F1_MARGIN, f"held-out F1 {f1:.3f} < recorded {recorded['f1']:.3f} - {F1_MARGIN}"


def test_feature_path_matches_session_scores(model, held_out) -> None:
    """``VhrModel.score`` (features computed at inference) gives the probabilities of the batch above."""
    paths, _, feats, _ = held_out
    if model.input_kind != "features":
        pytest.skip("image model")
    batch = np.asarray(model.session.run(None, {model.session.get_inputs()[0].name: feats[:3]})[1])[:, 1]
    single = np.array([model.score(read_rgb(f)) for f in paths[:3]])
    assert np.allclose(batch, single, atol=1e-5)


def test_example_tiles_superpixel_rule(model) -> None:
    """Texty's rule on whole example tiles: positive tiles have > 2 positive superpixels, negative tiles do not."""
    from amberwatch.vhr.superpixels import tile_superpixels

    counts = {}
    for name in ("positive1", "positive2", "positive3", "negative1", "negative2", "negative3"):
        rgb = read_rgb(chips_dir() / "example-tiles" / f"{name}.png")
        _, sps = tile_superpixels(rgb)
        assert 15 <= len(sps) <= 35
        counts[name] = int((model.score_many([s.crop for s in sps]) >= model.threshold).sum())
    flagged = {k: v > 2 for k, v in counts.items()}
    assert sum(flagged[k] == k.startswith("positive") for k in flagged) >= 5, counts
    assert flagged["positive1"] and not flagged["negative1"], counts


def _copy_chips(dst: Path, n: int = 3) -> list[str]:
    src = chips_dir()
    names = []
    for sub in ("positive", "negative"):
        for f in sorted((src / sub).glob("*.png"))[:n]:
            (dst / sub).mkdir(parents=True, exist_ok=True)
            shutil.copy(f, dst / sub / f.name)
            names.append(f"{sub}/{f.name}")
    return names


def test_cli_score_chips_writes_csv(tmp_path: Path) -> None:
    chips = tmp_path / "chips"
    names = _copy_chips(chips)
    (chips / "notes.txt").write_text("not an image")
    out = tmp_path / "scores.csv"
    res = CliRunner().invoke(vhr_app, ["score-chips", str(chips), "--out", str(out), "--model", str(MODEL_DIR)])
    assert res.exit_code == 0, res.output
    assert "notes.txt" in res.output and "not a readable image" in res.output
    with out.open() as f:
        reader = csv.reader(f)
        header = next(reader)
        rows = list(reader)
    assert header == ["file", "probability", "positive"]
    assert sorted(r[0] for r in rows) == sorted(names)
    for r in rows:
        assert 0.0 <= float(r[1]) <= 1.0 and r[2] in {"0", "1"}
    # the API gives the same numbers
    api = {s.file.relative_to(chips).as_posix(): s for s in score_chips(chips, MODEL_DIR)}
    for r in rows:
        assert float(r[1]) == pytest.approx(api[r[0]].probability, abs=1e-6)
        assert int(r[2]) == int(api[r[0]].positive)


def test_cli_fails_when_nothing_is_readable(tmp_path: Path) -> None:
    (tmp_path / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n" + b"garbage" * 10)
    res = CliRunner().invoke(vhr_app, ["score-chips", str(tmp_path), "--out", str(tmp_path / "x.csv"),
                                       "--model", str(MODEL_DIR)])
    assert res.exit_code == 2
    assert "no readable RGB image" in res.output
    assert not (tmp_path / "x.csv").exists()


def test_corrupt_and_wrong_images_give_clear_errors(tmp_path: Path) -> None:
    bad = tmp_path / "chip.png"
    bad.write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(InputError, match=r"chip\.png: not a readable image"):
        read_rgb(bad)
    from PIL import Image

    Image.fromarray(np.zeros((64, 64), dtype=np.uint8)).save(tmp_path / "gray.png")
    with pytest.raises(InputError, match="not an 8-bit colour image"):
        read_rgb(tmp_path / "gray.png")
    with pytest.raises(InputError, match="uint8"):
        score_image(np.zeros((64, 64, 3), dtype=np.float32), MODEL_DIR)
    with pytest.raises(InputError, match="no readable RGB image"):
        score_chips(tmp_path, MODEL_DIR)


def test_tiny_training_run_produces_working_onnx(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("lightgbm")
    pytest.importorskip("onnxmltools")
    monkeypatch.setenv("AMBERWATCH_CACHE", str(tmp_path / "cache"))  # cold: features are computed here
    # the module's function: once amberwatch_training.vhr.train is imported (test_vhr_effnet does), the package
    # attribute ``train`` is that submodule, not the package-level wrapper
    from amberwatch_training.vhr.train import train

    out = tmp_path / "vhr-texty" / "0.0.1"
    m = train(chips_dir(), out, seed=0, kind="ensemble", folds=2, max_chips=48, example_tiles=False,
              random_split_info=True)
    for f in ("model.onnx", "mlm.json", "metrics.json"):
        assert (out / f).is_file()
    props = json.loads((out / "mlm.json").read_text())["properties"]
    assert props["amberwatch:family"] == "vhr_rgb" and props["mlm:name"] == "vhr-texty"
    assert props["amberwatch:version"] == "0.0.1" and 0 < props["amberwatch:threshold"] < 1
    assert m["onnx_parity_max_abs_diff"] < 1e-3  # ONNX trees compare thresholds in float32
    assert len(m["cv"]["folds"]) == 2 and m["held_out"]["n"] > 0
    assert props["mlm:framework"] == "scikit-learn" and props["amberwatch:input_kind"] == "features"
    assert len(m["random_chip_split_cv_info_only"]["folds"]) == 2
    chip = read_rgb(next((chips_dir() / "positive").glob("*.png")))
    assert 0.0 <= score_image(chip, out) <= 1.0


def _scene_from_tile(tmp_path: Path, name: str, rgb: np.ndarray | None = None):
    import rasterio
    from rasterio.transform import from_origin
    from shapely.geometry import box

    from amberwatch.types import IngestedScene

    rgb = read_rgb(chips_dir() / "example-tiles" / f"{name}.png") if rgb is None else rgb
    h, w = rgb.shape[:2]
    x0, y0, res = 440_000.0, 5_700_000.0, 0.37  # UTM 35N: ~26.14 E, 51.45 N (Rivne oblast)
    path = tmp_path / f"{name}.tif"
    profile = {"driver": "COG", "width": w, "height": h, "count": 3, "dtype": "uint8", "crs": "EPSG:32635",
               "transform": from_origin(x0, y0, res, res)}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(rgb.transpose(2, 0, 1))
    bounds = (x0, y0 - h * res, x0 + w * res, y0)
    return IngestedScene(
        scene_key=f"vhr_{name}", sensor="vhr_rgb", family="vhr_rgb", level="RGB",
        acquired=datetime(2015, 5, 23, tzinfo=UTC), bands=["red", "green", "blue"], resolution=res,
        crs="EPSG:32635", bounds=bounds, footprint_wgs84=box(0, 0, 1, 1), reflectance_path=path,
        cloud_mask_path=None, source=str(path),
    )


def test_detect_vhr_on_georeferenced_tiles(tmp_path: Path) -> None:
    from amberwatch.settings import Settings

    settings = Settings(data_dir=tmp_path / "var")
    pos = detect_vhr(_scene_from_tile(tmp_path, "positive1"), MODEL_DIR, settings, work_dir=tmp_path / "det")
    assert pos.polygons, pos.parameters
    assert pos.parameters["tiles_flagged"] == 1 and pos.parameters["tiles"] == 1
    for poly in pos.polygons:
        assert poly.cls == "pit" and poly.geometry.is_valid
        lon, lat = poly.geometry.centroid.x, poly.geometry.centroid.y
        assert 26.0 < lon < 26.3 and 51.3 < lat < 51.5  # EPSG:4326, not UTM metres
        assert 0.0 < poly.confidence <= 1.0 and poly.confidence >= pos.parameters["threshold"]
        assert 0.0 < poly.area_ha < 37 * 37 / 100  # within one 370 m tile
    assert pos.probability_path is not None and pos.probability_path.is_file()
    neg = detect_vhr(_scene_from_tile(tmp_path, "negative1"), MODEL_DIR, settings)
    assert neg.polygons == [] and neg.parameters["tiles_flagged"] == 0
    assert neg.provider in {"CPUExecutionProvider", "CUDAExecutionProvider"}


def test_detect_vhr_tiles_a_mosaic_and_keeps_polygons_on_the_mining_tile(tmp_path: Path) -> None:
    """positive1 | negative1 side by side (2 x 1 tiles of 370 m): only the left tile is flagged."""
    from amberwatch.settings import Settings

    tiles = [read_rgb(chips_dir() / "example-tiles" / f"{n}.png") for n in ("positive1", "negative1")]
    h = min(t.shape[0] for t in tiles)
    mosaic = np.concatenate([np.pad(tiles[0][:h], ((0, 0), (0, 1000 - tiles[0].shape[1]), (0, 0)), mode="edge"),
                             tiles[1][:h]], axis=1)
    scene = _scene_from_tile(tmp_path, "mosaic", mosaic)
    res = detect_vhr(scene, MODEL_DIR, Settings(data_dir=tmp_path / "var"))
    assert res.parameters["tiles"] == 2 and res.parameters["tiles_flagged"] == 1, res.parameters
    from pyproj import Transformer

    x_mid = 440_000.0 + 1000 * 0.37
    lon_mid, _ = Transformer.from_crs("EPSG:32635", "EPSG:4326", always_xy=True).transform(x_mid, 5_699_800.0)
    assert res.polygons and all(p.geometry.bounds[2] <= lon_mid + 1e-9 for p in res.polygons)


def test_detect_vhr_rejects_non_rgb_rasters(tmp_path: Path) -> None:
    import rasterio
    from rasterio.transform import from_origin

    from amberwatch.settings import Settings
    from amberwatch.types import IngestedScene

    path = tmp_path / "s2.tif"
    with rasterio.open(path, "w", driver="GTiff", width=64, height=64, count=3, dtype="uint16", crs="EPSG:32635",
                       transform=from_origin(300_000, 5_700_000, 10, 10)) as dst:
        dst.write(np.ones((3, 64, 64), dtype=np.uint16))
    from shapely.geometry import box

    scene = IngestedScene("s", "vhr_rgb", "vhr_rgb", "RGB", datetime(2020, 1, 1, tzinfo=UTC), ["red", "green", "blue"],
                          10.0, "EPSG:32635", (0, 0, 1, 1), box(0, 0, 1, 1), path, None, str(path))
    with pytest.raises(InputError, match="uint8"):
        detect_vhr(scene, MODEL_DIR, Settings(data_dir=tmp_path))


def test_failure_sheets_refuse_a_folder_inside_the_repository(tmp_path: Path) -> None:
    """The chips are internal data: their picture sheets may only be written outside the repository."""
    from amberwatch_training.vhr.failures import failure_sheets

    with pytest.raises(InputError, match="inside the repository"):
        failure_sheets(tmp_path, MODEL_DIR, REPO / "docs" / "img")
    assert not (REPO / "docs" / "img" / "vhr_false_alarms.png").exists()
