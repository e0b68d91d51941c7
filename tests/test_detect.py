"""Detection runtime: real onnxruntime sessions on tiny ONNX models built here, real rasters written here."""

from __future__ import annotations

import json
import logging
import os
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pyogrio
import pytest
import rasterio
import rasterio.shutil
import shapely
from conftest import run_cli
from onnx import TensorProto, helper, numpy_helper
from pyproj import Transformer
from rasterio.transform import from_origin
from scipy import ndimage

from amberwatch.detect import detect_scene, write_polygons
from amberwatch.detect.decision import DecisionRule, object_class_map
from amberwatch.detect.registry import default_refs, get_model, list_models, load_model
from amberwatch.detect.segment import cached_runner, predict_probabilities
from amberwatch.detect.session import ModelRunner, create_session
from amberwatch.detect.vectorize import vectorize
from amberwatch.errors import InputError
from amberwatch.settings import Settings
from amberwatch.types import SENTINEL2_BANDS, IngestedScene

CRS = "EPSG:32635"
RES = 10.0
X0, Y0 = 400_000.0, 5_610_000.0  # UTM 35N, near Rivne
HEIGHT, WIDTH = 260, 300
MODEL_BANDS = ["blue", "green", "red", "nir", "swir16"]
MULTIPLE = 16

# squares: (row, col, size, kind)
PIT = (40, 40, 30, "pit")
POND = (150, 180, 25, "pond")
STRADDLE = (118, 118, 20, "pit")  # crosses the 64- and 128-pixel window and block borders
SMALL = (200, 40, 4, "pit")
CLOUDY = (40, 200, 20, "pit")
NODATA_COLS = (285, 300)  # all-zero strip: the model alone would call it pond


def build_onnx(path: Path, n_bands: int = len(MODEL_BANDS)) -> Path:
    """Logits = 1x1 conv (bright swir16 -> pit, dark nir -> pond), 3x3 mean of logits, softmax over classes.

    A zero-weighted 16x16 pool/upsample branch makes the graph fail unless H and W are multiples of 16.
    """
    k = 50.0
    w = np.zeros((3, n_bands, 1, 1), np.float32)
    b = np.zeros(3, np.float32)
    swir, nir = MODEL_BANDS.index("swir16"), MODEL_BANDS.index("nir")
    w[1, swir], b[1] = k, -0.3 * k
    w[2, nir], b[2] = -k, 0.165 * k  # halfway between pond (0.03) and land (0.30) nir
    smooth = np.full((3, 1, 3, 3), 1 / 9, np.float32)
    inits = [
        numpy_helper.from_array(w, "w"),
        numpy_helper.from_array(b, "b"),
        numpy_helper.from_array(smooth, "smooth"),
        numpy_helper.from_array(np.array([1, 1, MULTIPLE, MULTIPLE], np.float32), "scales"),
        numpy_helper.from_array(np.array([0.0], np.float32), "zero"),
        numpy_helper.from_array(np.array([1], np.int64), "axis1"),
    ]
    nodes = [
        helper.make_node("Conv", ["reflectance", "w", "b"], ["logits"]),
        helper.make_node("Conv", ["logits", "smooth"], ["smoothed"], group=3, pads=[1, 1, 1, 1]),
        helper.make_node(
            "AveragePool", ["reflectance"], ["pooled"], kernel_shape=[MULTIPLE, MULTIPLE], strides=[MULTIPLE, MULTIPLE]
        ),
        helper.make_node("Resize", ["pooled", "", "scales"], ["up"], mode="nearest"),
        helper.make_node("ReduceSum", ["up", "axis1"], ["upsum"], keepdims=1),
        helper.make_node("Mul", ["upsum", "zero"], ["nothing"]),
        helper.make_node("Add", ["smoothed", "nothing"], ["total"]),
        helper.make_node("Softmax", ["total"], ["probabilities"], axis=1),
    ]
    graph = helper.make_graph(
        nodes,
        "tiny-seg",
        [helper.make_tensor_value_info("reflectance", TensorProto.FLOAT, ["N", n_bands, "H", "W"])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3, "H", "W"])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    onnx.save(model, path)
    return path


def register(
    models_dir: Path, name: str, version: str, family: str = "sentinel2", bands: list[str] | None = None
) -> Path:
    d = models_dir / name / version
    d.mkdir(parents=True)
    build_onnx(d / "model.onnx", len(bands or MODEL_BANDS))
    card = {
        "type": "Feature",
        "stac_version": "1.0.0",
        "id": f"{name}-{version}",
        "properties": {
            "mlm:name": name,
            "amberwatch:version": version,
            "amberwatch:family": family,
            "amberwatch:input_multiple": MULTIPLE,
            "mlm:framework": "onnx",
            "mlm:input": [
                {
                    "name": "reflectance",
                    "bands": [{"name": b} for b in (bands or MODEL_BANDS)],
                    "input": {"shape": [-1, len(bands or MODEL_BANDS), -1, -1], "data_type": "float32"},
                }
            ],
            "mlm:output": [{"name": "probabilities", "classes": ["background", "pit", "pond"]}],
        },
    }
    (d / "mlm.json").write_text(json.dumps(card))
    (d / "metrics.json").write_text(json.dumps({"iou_pit": 0.0}))
    return d


def write_cog(path: Path, data: np.ndarray, descriptions: list[str] | None = None, nodata: int | None = 0) -> Path:
    tmp = path.with_suffix(".tmp.tif")
    profile = dict(
        driver="GTiff",
        width=data.shape[2],
        height=data.shape[1],
        count=data.shape[0],
        dtype=data.dtype,
        crs=CRS,
        transform=from_origin(X0, Y0, RES, RES),
        nodata=nodata,
    )
    with rasterio.open(tmp, "w", **profile) as dst:
        dst.write(data)
        if descriptions:
            dst.descriptions = tuple(descriptions)
    rasterio.shutil.copy(tmp, path, driver="COG")
    tmp.unlink()
    return path


def make_scene(
    tmp_path: Path,
    bands: tuple[str, ...] = SENTINEL2_BANDS,
    squares=(PIT, POND, STRADDLE, SMALL, CLOUDY),
    cloud: tuple[int, int, int] | None = CLOUDY[:3],
    family: str = "sentinel2",
) -> IngestedScene:
    data = np.zeros((len(bands), HEIGHT, WIDTH), np.uint16)
    rng = np.random.default_rng(0)
    base = {"nir": 3000, "nir08": 3000, "swir16": 1500, "swir22": 1000}
    for i, b in enumerate(bands):
        data[i] = base.get(b, 500) + rng.integers(-50, 50, (HEIGHT, WIDTH))
    for row, col, size, kind in squares:
        sl = (slice(row, row + size), slice(col, col + size))
        if kind == "pit":
            data[(bands.index("swir16"), *sl)] = 4500
        else:
            data[(bands.index("nir"), *sl)] = 300
    data[:, :, NODATA_COLS[0] : NODATA_COLS[1]] = 0
    refl = write_cog(tmp_path / "scene_refl.tif", data, list(bands))
    mask_path = None
    if cloud:
        mask = np.zeros((1, HEIGHT, WIDTH), np.uint8)
        r, c, s = cloud
        mask[0, r : r + s, c : c + s] = 1
        mask_path = write_cog(tmp_path / "scene_cloud.tif", mask, nodata=None)
    bounds = (X0, Y0 - HEIGHT * RES, X0 + WIDTH * RES, Y0)
    to_wgs = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    footprint = shapely.box(*to_wgs.transform_bounds(*bounds))
    return IngestedScene(
        scene_key="S2A_TEST_T35UNS_20240601",
        sensor="sentinel2a",
        family=family,
        level="L2A",
        acquired=datetime(2024, 6, 1, 9, 30, tzinfo=UTC),
        bands=list(bands),
        resolution=RES,
        crs=CRS,
        bounds=bounds,
        footprint_wgs84=footprint,
        reflectance_path=refl,
        cloud_mask_path=mask_path,
        source=str(refl),
    )


def square_wgs84(row: int, col: int, size: int) -> shapely.Polygon:
    to_wgs = Transformer.from_crs(CRS, "EPSG:4326", always_xy=True)
    box = shapely.box(X0 + col * RES, Y0 - (row + size) * RES, X0 + (col + size) * RES, Y0 - row * RES)
    return shapely.transform(box, lambda xy: np.column_stack(to_wgs.transform(xy[:, 0], xy[:, 1])))


@pytest.fixture()
def models_dir(tmp_path: Path) -> Path:
    d = tmp_path / "registry"
    register(d, "tiny-s2", "1.2.0")
    register(d, "tiny-s2", "1.10.0")
    register(d, "tiny-landsat", "0.1.0", family="landsat")
    return d


def settings_for(models_dir: Path, window: int = 64, mmu: float = 0.05) -> Settings:
    return Settings(
        models_dir=models_dir,
        window_size=window,
        min_mapping_unit_ha=mmu,
        default_models={"sentinel2": "tiny-s2", "landsat": "tiny-landsat"},
    )


def read_probs(path: Path) -> np.ndarray:
    with rasterio.open(path) as src:
        assert src.descriptions == ("pit", "pond")
        assert src.tags(ns="IMAGE_STRUCTURE").get("LAYOUT") == "COG"
        return src.read()


# --- registry ---------------------------------------------------------------------------------------------------


def test_registry_versions_and_errors(models_dir: Path) -> None:
    models = list_models(models_dir)
    assert [m.ref for m in models] == ["tiny-landsat@0.1.0", "tiny-s2@1.2.0", "tiny-s2@1.10.0"]
    defaults = {"sentinel2": "tiny-s2", "landsat": "tiny-landsat"}
    latest = get_model(models_dir, None, "sentinel2", defaults)
    assert latest.version == "1.10.0"  # semantic, not lexical
    assert latest.input_bands == MODEL_BANDS and latest.input_multiple == MULTIPLE
    assert len(latest.sha256) == 64 and latest.metrics == {"iou_pit": 0.0}
    assert get_model(models_dir, "tiny-s2@1.2.0", "sentinel2", defaults).version == "1.2.0"
    with pytest.raises(InputError, match=r"Unknown model 'nope'.*tiny-s2@1.10.0"):
        get_model(models_dir, "nope", "sentinel2", defaults)
    with pytest.raises(InputError, match=r"no version '9.9'.*1.2.0, 1.10.0"):
        get_model(models_dir, "tiny-s2@9.9", "sentinel2", defaults)
    with pytest.raises(InputError, match=r"tiny-landsat@0.1.0 is for landsat imagery but the scene is sentinel2"):
        get_model(models_dir, "tiny-landsat", "sentinel2", defaults)
    with pytest.raises(InputError, match="No default model"):
        get_model(models_dir, None, "vhr_rgb", defaults)
    assert latest.onnx_path.name == "model.onnx" and latest.context_margin is None
    assert default_refs(models, defaults) == {"tiny-s2@1.10.0", "tiny-landsat@0.1.0"}
    assert default_refs(models, {"sentinel2": "tiny-landsat"}) == set()  # a name of another family marks nothing


def test_models_list_marks_only_the_version_a_run_uses(models_dir: Path, monkeypatch: pytest.MonkeyPatch,
                                                       tmp_path: Path) -> None:
    """``amberwatch models list``: "(default)" on the highest version of each family's configured name only (it
    used to mark every version of that name)."""
    monkeypatch.setenv("AMBERWATCH_MODELS_DIR", str(models_dir))
    monkeypatch.setenv("AMBERWATCH_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("AMBERWATCH_DEFAULT_MODELS", json.dumps({"sentinel2": "tiny-s2", "landsat": "tiny-landsat"}))
    res = run_cli("models", "list")
    assert res.exit_code == 0, res.output
    marked = [line.split("\t")[0] for line in res.output.splitlines() if "(default)" in line]
    assert marked == ["tiny-landsat@0.1.0", "tiny-s2@1.10.0"], res.output
    assert "tiny-s2@1.2.0\tsentinel2\t" in res.output


def test_registry_reads_model_asset_href_and_margin(tmp_path: Path) -> None:
    d = register(tmp_path, "renamed", "2.0.0")
    (d / "model.onnx").rename(d / "net.onnx")
    card = json.loads((d / "mlm.json").read_text())
    card["assets"] = {"model": {"href": "./net.onnx", "roles": ["mlm:model"]}}
    card["properties"]["amberwatch:context_margin"] = 48
    (d / "mlm.json").write_text(json.dumps(card))
    model = load_model(d)
    assert model.onnx_path == d / "net.onnx" and len(model.sha256) == 64 and model.context_margin == 48


# --- session -----------------------------------------------------------------------------------------------------


def test_session_logs_provider_and_io_binding_matches_run(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = build_onnx(tmp_path / "m.onnx")
    with caplog.at_level(logging.INFO, logger="amberwatch.detect.session"):
        session, used = create_session(path, None)
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("onnxruntime: ")]
    assert len(lines) == 1 and used in lines[0]
    if "CUDAExecutionProvider" not in ort.get_available_providers():
        assert used == "CPUExecutionProvider"
        assert lines[0].startswith("onnxruntime: CUDA not available (providers: ")
        cores = len(os.sched_getaffinity(0))  # intra-op threads = the cores this process may use
        assert lines[0].endswith(f"using CPUExecutionProvider with {cores} intra-op threads")
        assert session.get_session_options().intra_op_num_threads == cores
    x = np.random.default_rng(1).random((2, len(MODEL_BANDS), 32, 48), dtype=np.float32)
    plain = ModelRunner(session, used, use_io_binding=False)(x)
    bound = ModelRunner(session, used, use_io_binding=True)(x)
    assert plain.shape == (2, 3, 32, 48)
    np.testing.assert_allclose(plain.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(bound, plain, atol=1e-6)


# --- segmentation ------------------------------------------------------------------------------------------------


def test_probabilities_seamless_masked_and_placed(tmp_path: Path, models_dir: Path) -> None:
    scene = make_scene(tmp_path)
    model = get_model(models_dir, "tiny-s2", "sentinel2", {})
    small = read_probs(predict_probabilities(scene, model, tmp_path / "p64.tif", settings_for(models_dir, 64)))
    whole = read_probs(predict_probabilities(scene, model, tmp_path / "p512.tif", settings_for(models_dir, 512)))
    assert small.shape == (2, HEIGHT, WIDTH)
    # 64-px windows with cropped margins reproduce the single-window result: no seams
    assert np.abs(small.astype(int) - whole.astype(int)).max() <= 1
    pit, pond = small[0] / 255, small[1] / 255
    r, c, s, _ = PIT
    assert pit[r + 2 : r + s - 2, c + 2 : c + s - 2].min() > 0.99 and pond[r : r + s, c : c + s].max() < 0.01
    r, c, s, _ = POND
    assert pond[r + 2 : r + s - 2, c + 2 : c + s - 2].min() > 0.9 and pit[r : r + s, c : c + s].max() < 0.01
    assert pit[5:30, 5:30].max() < 0.01 and pond[5:30, 5:30].max() < 0.01  # background
    r, c, s = CLOUDY[:3]
    assert small[:, r : r + s, c : c + s].max() == 0  # cloud mask zeroes the pit under the cloud
    assert small[:, :, NODATA_COLS[0] :].max() == 0  # nodata (the model alone would call it pond)
    with rasterio.open(tmp_path / "p64.tif") as src:
        mask = src.dataset_mask()
    assert mask[r : r + s, c : c + s].max() == 0 and mask[:, NODATA_COLS[0] :].max() == 0 and mask[5, 5] == 255


def test_cloud_mask_on_another_grid_is_warped(tmp_path: Path, models_dir: Path) -> None:
    scene = make_scene(tmp_path, cloud=None)
    mask = np.zeros((1, HEIGHT // 2, WIDTH // 2), np.uint8)  # 20 m grid
    r, c, s = CLOUDY[:3]
    mask[0, r // 2 : (r + s) // 2, c // 2 : (c + s) // 2] = 1
    tmp = tmp_path / "cloud20.tif"
    with rasterio.open(
        tmp,
        "w",
        driver="GTiff",
        width=WIDTH // 2,
        height=HEIGHT // 2,
        count=1,
        dtype="uint8",
        crs=CRS,
        transform=from_origin(X0, Y0, 2 * RES, 2 * RES),
    ) as dst:
        dst.write(mask)
    scene.cloud_mask_path = tmp
    model = get_model(models_dir, "tiny-s2", "sentinel2", {})
    probs = read_probs(predict_probabilities(scene, model, tmp_path / "p.tif", settings_for(models_dir)))
    assert probs[:, r : r + s, c : c + s].max() == 0
    assert probs[0, PIT[0] + 5, PIT[1] + 5] > 250


def test_fully_clouded_windows_are_skipped_and_zero(tmp_path: Path, models_dir: Path) -> None:
    scene = make_scene(tmp_path, squares=(POND,), cloud=(0, 0, 128))  # exactly 4 windows of 64 px
    model = get_model(models_dir, "tiny-s2", "sentinel2", {})
    probs = read_probs(predict_probabilities(scene, model, tmp_path / "p.tif", settings_for(models_dir, 64)))
    assert probs[:, :128, :128].max() == 0
    r, c, s, _ = POND
    assert probs[1, r + 2 : r + s - 2, c + 2 : c + s - 2].min() > 230


def test_missing_bands_is_input_error(tmp_path: Path, models_dir: Path) -> None:
    scene = make_scene(tmp_path, bands=("blue", "green", "red", "nir"), squares=(POND,))
    model = get_model(models_dir, "tiny-s2", "sentinel2", {})
    with pytest.raises(InputError, match=r"needs bands .* lacks \['swir16'\]"):
        predict_probabilities(scene, model, tmp_path / "p.tif", settings_for(models_dir))


def test_family_mismatch_is_input_error(tmp_path: Path, models_dir: Path) -> None:
    scene = make_scene(tmp_path, squares=())
    model = get_model(models_dir, "tiny-landsat", "landsat", {})
    with pytest.raises(InputError, match=r"is for landsat imagery but scene .* is sentinel2"):
        detect_scene(scene, model, tmp_path / "work", settings_for(models_dir))


# --- vectorize / end to end ----------------------------------------------------------------------------------------


def test_detect_scene_polygons(tmp_path: Path, models_dir: Path) -> None:
    scene = make_scene(tmp_path)
    model = get_model(models_dir, None, "sentinel2", {"sentinel2": "tiny-s2"})
    calls: list[tuple[float, str]] = []
    result = detect_scene(
        scene,
        model,
        tmp_path / "work",
        settings_for(models_dir, window=64, mmu=0.05),
        progress=lambda f, m: calls.append((f, m)),
    )
    fractions = [f for f, _ in calls]
    assert fractions == sorted(fractions) and fractions[-1] == 1.0 and ("vectorizing" in [m for _, m in calls])
    assert any(m == "segmenting: window 25/25" for _, m in calls)  # 5 x 5 windows of 64 px
    assert result.model_name == "tiny-s2" and result.model_version == "1.10.0"
    assert result.observed_at == scene.acquired and result.provider in ort.get_available_providers()
    assert result.parameters["window_size"] == 64 and result.parameters["overlap_margin"] == 32
    assert result.parameters["pixel_threshold"] == 0.5 and result.parameters["min_object_confidence"] == 0.0
    assert result.parameters["min_area_ha"] == 0.05
    by_place = {}
    for square in (PIT, POND, STRADDLE, SMALL):
        truth = square_wgs84(*square[:3])
        hits = [p for p in result.polygons if p.geometry.intersects(truth)]
        assert len(hits) == 1, f"{square}: {len(hits)} polygons"  # straddling square: ONE polygon, no seam
        hit = by_place[square] = hits[0]
        assert hit.cls == square[3]
        true_ha = square[2] ** 2 * RES * RES / 10_000
        # the model's 3x3 smoothing erodes the 4 corner pixels; otherwise the area is exact
        assert hit.area_ha == pytest.approx(true_ha, rel=0.03 if square[2] >= 20 else 0.3)
        iou = hit.geometry.intersection(truth).area / hit.geometry.union(truth).area
        assert iou > (0.95 if square[2] >= 20 else 0.6)
        assert 0.5 <= hit.confidence <= 1.0
    assert by_place[PIT].confidence > 0.95
    assert len(result.polygons) == 4  # nothing under the cloud, in the nodata strip or in the background
    assert not any(p.geometry.intersects(square_wgs84(*CLOUDY[:3])) for p in result.polygons)
    lon, lat = result.polygons[0].geometry.centroid.coords[0]
    assert 24.0 < lon < 30.0 and 50.0 < lat < 51.5  # EPSG:4326, x = lon
    # the clear sky for the tracking comes with the result: everything but the cloud square
    assert result.clear_sky is not None and result.clear_sky.covers(square_wgs84(*PIT[:3]))
    assert result.clear_sky.intersection(square_wgs84(*CLOUDY[:3])).area < 1e-6 * result.clear_sky.area

    # min mapping unit drops the 4x4 px blob (0.12 ha after corner erosion), keeps the rest
    bigger_mmu = vectorize(result.probability_path, CRS, min_area_ha=0.2, block_size=50)
    assert len(bigger_mmu) == 3
    assert not any(p.geometry.intersects(square_wgs84(*SMALL[:3])) for p in bigger_mmu)
    # small blocks: polygons cut by block edges are merged back, same areas
    areas = sorted(round(p.area_ha, 4) for p in result.polygons if p.area_ha >= 0.2)
    assert sorted(round(p.area_ha, 4) for p in bigger_mmu) == areas
    # a stricter threshold can only shrink detections
    strict = vectorize(result.probability_path, CRS, rule=DecisionRule(0.99), min_area_ha=0.0)
    assert sum(p.area_ha for p in strict) < sum(p.area_ha for p in result.polygons)


def test_clear_sky_footprint_is_the_clear_pixels_in_wgs84(tmp_path: Path) -> None:
    from amberwatch.area import area_ha
    from amberwatch.detect.clearsky import clear_sky_footprint

    scene = make_scene(tmp_path, squares=())
    clear = clear_sky_footprint(scene.cloud_mask_path)
    assert clear is not None and clear.is_valid and clear.geom_type == "MultiPolygon"
    clear_pixels = HEIGHT * WIDTH - CLOUDY[2] ** 2
    # geodesic area vs UTM pixel area: the UTM scale factor near the zone's central meridian (< 0.1 %)
    assert area_ha(clear) == pytest.approx(clear_pixels * RES * RES / 10_000, rel=1e-3)
    assert clear.intersection(square_wgs84(*CLOUDY[:3])).area < 1e-9
    assert clear_sky_footprint(None) is None  # no cloud mask: clear everywhere
    assert clear_sky_footprint(tmp_path / "missing.tif") is None


def test_vhr_models_do_not_go_through_detect_scene(tmp_path: Path, models_dir: Path) -> None:
    from amberwatch.detect.registry import ModelInfo

    scene = make_scene(tmp_path, squares=(), cloud=None, family="vhr_rgb")
    vhr = ModelInfo(name="vhr-x", version="1.0.0", family="vhr_rgb", path=tmp_path, onnx_path=tmp_path / "m.onnx",
                    card={})
    with pytest.raises(InputError, match="run it with amberwatch.vhr.detect_vhr"):
        detect_scene(scene, vhr, tmp_path / "work", settings_for(models_dir))


def test_pit_touching_pond_gives_one_polygon_per_class(tmp_path: Path, models_dir: Path) -> None:
    scene = make_scene(tmp_path, squares=((60, 60, 30, "pit"), (60, 90, 30, "pond")), cloud=None)
    model = get_model(models_dir, "tiny-s2", "sentinel2", {})
    result = detect_scene(scene, model, tmp_path / "work", settings_for(models_dir))
    assert sorted(p.cls for p in result.polygons) == ["pit", "pond"]
    pit, pond = sorted(result.polygons, key=lambda p: p.cls)
    assert pit.geometry.intersection(pond.geometry).area < 0.01 * pit.geometry.area


def test_vectorize_non_utm_raster_area(tmp_path: Path) -> None:
    """A raster in EPSG:3857 (metres, but not area-true) gets its area measured in a local equal-area CRS."""
    to_merc = Transformer.from_crs("EPSG:4326", "EPSG:3857", always_xy=True)
    x0, y0 = to_merc.transform(26.25, 50.62)
    res = 10.0
    probs = np.zeros((2, 100, 100), np.uint8)
    probs[0, 20:70, 20:70] = 230
    with rasterio.open(
        tmp_path / "p.tif",
        "w",
        driver="GTiff",
        width=100,
        height=100,
        count=2,
        dtype="uint8",
        crs="EPSG:3857",
        transform=from_origin(x0, y0, res, res),
    ) as dst:
        dst.write(probs)
    (poly,) = vectorize(tmp_path / "p.tif", None, min_area_ha=0.0)
    scale = np.cos(np.radians(50.62)) ** 2  # mercator inflates areas by 1/cos^2(lat)
    assert poly.area_ha == pytest.approx(50 * 50 * res * res * scale / 10_000, rel=0.01)
    assert poly.confidence == pytest.approx(230 / 255)


def write_probs(path: Path, probs: np.ndarray) -> Path:
    with rasterio.open(path, "w", driver="GTiff", width=probs.shape[2], height=probs.shape[1], count=2,
                       dtype="uint8", crs=CRS, transform=from_origin(X0, Y0, RES, RES)) as dst:
        dst.write(probs)
    return path


def test_object_rule_same_in_blocks_as_on_the_whole_raster(tmp_path: Path) -> None:
    """vectorize (small blocks, objects cut by block edges) keeps exactly the objects the reference rule keeps."""
    rng = np.random.default_rng(3)
    probs = np.zeros((2, 120, 140), np.uint8)
    for _ in range(40):  # blobs of pit and pond with their own probability level, some touching, some on edges
        r, c, h, w = rng.integers(0, 110), rng.integers(0, 130), rng.integers(2, 14), rng.integers(2, 14)
        band = rng.integers(0, 2)
        probs[band, r:r + h, c:c + w] = np.clip(rng.normal(rng.uniform(120, 250), 15, (h, w)), 0, 255)[: 120 - r,
                                                                                                      : 140 - c]
    probs[1] = np.minimum(probs[1], 255 - probs[0])  # probabilities of one pixel sum to <= 1
    rule = DecisionRule(pixel_threshold=0.5, min_object_confidence=0.8)
    ref = object_class_map(probs, rule)
    objects, n = ndimage.label(ref > 0, structure=np.ones((3, 3), bool))
    mining = probs.astype(np.float64).sum(0)
    expected = sorted(round(mining[objects == i].mean() / 255, 6) for i in range(1, n + 1))
    loose = object_class_map(probs, DecisionRule(0.5, 0.0))
    assert 0 < n < ndimage.label(loose > 0, structure=np.ones((3, 3), bool))[1]  # the rule did drop objects
    regions = sum(ndimage.label(ref == k)[1] for k in (1, 2))  # one polygon per 4-connected one-class region
    path = write_probs(tmp_path / "p.tif", probs)
    for block in (16, 50, 2048):
        polys = vectorize(path, None, rule=rule, min_area_ha=0.0, block_size=block)
        assert len(polys) == regions, block
        assert sorted({round(p.confidence, 6) for p in polys}) == sorted(set(expected)), block
        assert all(p.confidence >= 0.8 for p in polys)


def test_decision_rule_from_card_and_bad_values() -> None:
    assert DecisionRule.from_card({}) == DecisionRule(0.5, 0.0)
    card = {"amberwatch:decision": {"pixel_threshold": 0.6, "min_object_confidence": 0.9}}
    assert DecisionRule.from_card(card) == DecisionRule(0.6, 0.9)
    for bad in ((0.0, 0.5), (1.2, 0.5), (0.5, -0.1), (0.5, 1.5)):
        with pytest.raises(InputError, match="must be in"):
            DecisionRule(*bad)


def test_write_polygons_gpkg_and_geojson(tmp_path: Path, models_dir: Path) -> None:
    scene = make_scene(tmp_path, squares=(PIT, POND), cloud=None)
    model = get_model(models_dir, "tiny-s2", "sentinel2", {})
    result = detect_scene(scene, model, tmp_path / "work", settings_for(models_dir))
    for name in ("out.gpkg", "out.geojson"):
        path = write_polygons(result, tmp_path / name)
        info = pyogrio.read_info(path)
        assert info["features"] == 2 and "4326" in info["crs"]
        assert list(info["fields"]) == ["class", "area_ha", "confidence", "observed_at", "model", "model_version"]
        _, _, geoms, fields = pyogrio.raw.read(path)
        assert sorted(fields[0]) == ["pit", "pond"]
        assert set(fields[4]) == {"tiny-s2"} and set(fields[5]) == {"1.10.0"}
        assert str(fields[3][0]).startswith("2024-06-01")
        back = shapely.from_wkb(geoms)
        assert back[0].equals_exact(result.polygons[0].geometry, 1e-9)
    with pytest.raises(InputError, match=r"\.gpkg or \.geojson"):
        write_polygons(result, tmp_path / "out.shp")


# --- the real registered model ------------------------------------------------------------------------------------

REAL_REGISTRY = Path(__file__).resolve().parents[1] / "models" / "registry"
REAL_S2 = [p for p in sorted((REAL_REGISTRY / "s2-unet").glob("*/model.onnx")) if (p.parent / "mlm.json").exists()]


@pytest.mark.skipif(not REAL_S2, reason="no s2-unet model registered in models/registry yet")
def test_registered_s2_unet_runs(tmp_path: Path) -> None:
    model = get_model(REAL_REGISTRY, "s2-unet", "sentinel2", {})
    assert model == load_model(REAL_S2[-1].parent) or model.name == "s2-unet"
    assert model.onnx_path.exists() and model.input_bands
    runner = cached_runner(str(model.onnx_path), model.sha256, None)
    size = max(64, model.input_multiple * 4)
    x = np.random.default_rng(2).uniform(0.0, 0.4, (1, len(model.input_bands), size, size)).astype(np.float32)
    out = runner(x)
    assert out.shape == (1, 3, size, size)
    np.testing.assert_allclose(out.sum(axis=1), 1.0, atol=1e-3)
    scene = make_scene(tmp_path, squares=(PIT, POND))
    probs = read_probs(predict_probabilities(scene, model, tmp_path / "p.tif", settings_for(REAL_REGISTRY, 128)))
    assert probs.shape == (2, HEIGHT, WIDTH) and probs[:, :, NODATA_COLS[0] :].max() == 0
