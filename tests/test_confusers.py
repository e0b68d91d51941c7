"""Confuser set (Sentinel-2, two seasons) and its evaluation: a tiny version that runs in seconds.

The full evaluation is a command: ``python -m amberwatch_training.confuser_eval models/registry/s2-unet/1.2.0``.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import run_cli

pytest.importorskip("sklearn", reason="the pixel RF needs the [train] extra")

from amberwatch.detect.decision import DecisionRule  # noqa: E402
from amberwatch_training import confusers, spectra, synth  # noqa: E402
from amberwatch_training.confuser_eval import (  # noqa: E402
    combine,
    count_objects,
    make_case,
    object_prf,
    score_cases,
)
from amberwatch_training.scenes import SceneMissingError, load_sentinel2  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
S2_MODEL = REPO / "models" / "registry" / "s2-unet" / "1.2.0"


@pytest.fixture(scope="module")
def scene():
    try:
        return load_sentinel2()
    except SceneMissingError as err:
        pytest.skip(str(err))


@pytest.fixture(scope="module")
def landcover(scene):
    return confusers.LandCover.of(scene)


def _ndvi(s: np.ndarray) -> float:
    red, nir = np.interp([665, 842], spectra.WAVELENGTHS, s)
    return float((nir - red) / (nir + red))


def test_real_pixel_spectrum_renders_back_to_the_real_pixel(scene, landcover):
    """A feature with a real pixel's spectrum, covering a whole window, reproduces that pixel's TOA values."""
    rows, cols = np.nonzero(landcover.masks["bare_soil"])
    r, c = int(rows[len(rows) // 2]), int(cols[len(cols) // 2])
    spec = confusers.pixel_surface(scene, r, c)
    window = (0, 600, 48, 48)
    t = scene.transform
    x0, y1 = t * (600 - 12, -12)
    x1, y0 = t * (600 + 60, 60)
    from shapely.geometry import box

    feat = confusers.SpectrumFeature(box(x0, y0, x1, y1), "real", 0, "bare_field", spectrum=spec)
    out = synth.render(scene, window, [feat])
    for i, name in enumerate(out.bands):
        band = scene.bands[name]
        f = int(round(band.res / scene.res))
        assert out.stack[i, 24, 24] == pytest.approx(band.data[r // f, c // f], abs=2e-4), name
    assert out.negative.all() and (out.label == 0).all()


@pytest.mark.parametrize("season", confusers.SEASONS)
def test_each_kind_has_its_expected_spectra_class(scene, landcover, season):
    sc = scene if season == "winter" else confusers.late_summer_scene(scene)
    rng = np.random.default_rng(3)
    for kind in confusers.KINDS:
        r0, c0 = 0, 960
        need = {"beach": scene.water, "sandbar": landcover.masks["water"]}.get(kind)
        window = confusers._window(rng, sc, synth.split_regions(sc)["val"], need, 192)
        r0, c0 = window[:2]
        rows, cols = np.nonzero((need if need is not None else ~scene.water)[r0 + 48:r0 + 144, c0 + 48:c0 + 144])
        cx, cy = sc.transform * (c0 + 48 + cols[0] + 0.5, r0 + 48 + rows[0] + 0.5)
        feats = confusers.make_confuser(rng, kind, season, sc, landcover, cx, cy, window)
        assert all(f.label == 0 and f.negative == kind for f in feats), kind
        specs = [f.spectrum for f in feats]  # type: ignore[attr-defined]
        if kind == "cloud_edge":
            assert feats == []
        elif kind == "bare_field":
            assert _ndvi(specs[0]) < 0.35 and specs[0][11] > 0.1  # bare soil: low NDVI, bright SWIR
        elif kind in ("sand_road", "beach", "sandbar", "sand_quarry"):
            assert feats[0].material in ("dry_sand", "wet_sand", "track", "limestone")
        elif kind == "clear_cut":
            assert 0.0 < _ndvi(specs[0]) < 0.8
        elif kind == "village":
            assert len(feats) > 15 and feats[0].material == "asphalt"
        elif kind == "fish_ponds":
            water = [s for s in specs if s[7] < 0.05 and s[2] > s[7]]  # NIR dark, green above NIR
            assert water, "fish ponds without water"
        elif kind == "peat_extraction":
            ratio = specs[0] / np.asarray(confusers.PEAT)
            assert np.allclose(ratio, ratio[0]), "peat keeps the documented PEAT spectrum shape"


def test_late_summer_greens_vegetation_only(scene, landcover):
    summer = confusers.late_summer_scene(scene)
    forest = landcover.masks["forest"]
    nir_w, nir_s = scene.bands["nir"].data, summer.bands["nir"].data
    assert nir_s[forest].mean() > nir_w[forest].mean() + 0.02
    water = landcover.masks["water"]
    assert np.array_equal(nir_s[water], nir_w[water])


def test_count_objects_on_a_hand_made_case():
    cls = np.zeros((40, 40), np.uint8)
    cls[2:6, 2:6] = 1  # touches the site -> found
    cls[20:24, 20:24] = 2  # on the confuser -> false on confuser
    cls[30:33, 2:5] = 1  # nowhere -> false elsewhere
    cls[35, 35] = 1  # 1 px: below the minimum mapping unit
    site_ids = np.zeros_like(cls, np.int32)
    site_ids[5:8, 5:8] = 1
    conf = np.zeros_like(cls, bool)
    conf[24:30, 24:30] = True  # touches the second object diagonally (8-neighbourhood)
    out = count_objects(cls, site_ids, {1, 2}, conf, min_px=5)
    assert out == {"objects": 3, "found": 1, "sites": 2, "false_on_confuser": 1, "false_elsewhere": 1}
    precision, recall, f1 = object_prf(out["objects"], 2, out["found"], out["sites"])
    assert (precision, recall) == pytest.approx((1 / 3, 1 / 2)) and f1 == pytest.approx(0.4)
    assert object_prf(0, 0, 0, 0) == (0.0, 0.0, 0.0)  # nothing found, nothing predicted: no division by zero


def test_combine_variants():
    pu = np.zeros((3, 1, 2), np.float32)
    pu[:, 0, 0] = [0.2, 0.6, 0.2]  # U-Net mining 0.8, pit share 0.75
    pu[:, 0, 1] = [1.0, 0.0, 0.0]
    pr = np.zeros_like(pu)
    pr[:, 0, 0] = [0.6, 0.2, 0.2]  # RF mining 0.4
    pr[:, 0, 1] = [0.0, 0.0, 1.0]
    mean, both = combine(pu, pr, "mean"), combine(pu, pr, "and")
    assert mean[:, 0, 0].sum() == pytest.approx(0.6 * 255, abs=2) and mean[0, 0, 0] > mean[1, 0, 0]
    assert both[:, 0, 0].sum() == pytest.approx(0.4 * 255, abs=2)
    assert both[:, 0, 1].sum() == 0 and combine(pu, pr, "rf")[1, 0, 1] == 255


def test_tiny_confuser_set_runs_the_registry_model_and_the_rf(scene, tmp_path):
    if not (S2_MODEL / "model.onnx").exists():
        pytest.skip("no s2-unet 1.2.0 in the registry")
    from amberwatch.detect.session import ModelRunner, create_session
    from amberwatch_training import pixel_rf

    lc = confusers.LandCover.of(scene)
    chips = [confusers.make_chip(scene, lc, k, "winter", "test", confusers.seed_of(k, "winter", "test", 0), size=96)
             for k in ("bare_field", "peat_extraction")]
    assert all(c.confuser.any() for c in chips)
    x = np.stack([c.rendered.stack for c in chips])
    y = np.stack([c.rendered.label for c in chips])
    clf = pixel_rf.train(x, y, trees=5, depth=6, per_chip=200)
    rf = pixel_rf.PixelRF(pixel_rf.export(clf, tmp_path / "rf.onnx"))
    p = rf(x[0])
    ref = clf.predict_proba(pixel_rf.features(x[0]))
    assert np.abs(p.reshape(3, -1)[clf.classes_].T - ref).max() < 1e-4  # skl2onnx export is exact
    absent = sorted({0, 1, 2} - set(clf.classes_.tolist()))
    assert not p[absent].any()  # a class the tiny forest never saw gets probability 0
    session, provider = create_session(S2_MODEL / "model.onnx", ["CPUExecutionProvider"], threads=1)
    cases = [make_case(c.kind, c.season, c.split, c.rendered, c.confuser, ModelRunner(session, provider), rf)
             for c in chips]
    s = score_cases(cases, "mean", DecisionRule(0.5, 0.0))
    assert s["n"] == 2 and s["objects"] >= s["found"] and 0 <= s["f1"] <= 1
    assert s["km2"] == pytest.approx(2 * 0.9216)


def test_cli_refuses_a_folder_without_a_model(tmp_path):
    res = run_cli("eval", "confusers", str(tmp_path))
    assert res.exit_code == 2 and "has no model.onnx" in res.output
    res = run_cli("eval", "confusers", str(tmp_path), "--per-kind", "0")
    assert res.exit_code == 2


def test_water_context_rule_drops_objects_on_large_water_only():
    from amberwatch_training.confuser_eval import big_water, water_context_filter

    stack = np.full((10, 60, 60), 0.1, np.float32)
    stack[6] = 0.3  # land: NIR above green
    stack[6, :, 40:] = 0.01  # a lake: 60 x 20 px = 12 ha
    stack[6, 5:9, 5:9] = 0.01  # a 0.16 ha pond
    big = big_water(stack)
    assert big[:, 40:].all() and not big[5:9, 5:9].any()
    cls = np.zeros((60, 60), np.uint8)
    cls[20:30, 36:40] = 1  # a bar on the lake shore
    cls[3:11, 3:11] = 1  # a pit with its small pond
    out = water_context_filter(cls, big)
    assert not out[20:30, 36:40].any() and out[3:11, 3:11].all()
