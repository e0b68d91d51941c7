"""The U-Net + pixel RF mean ensemble as one ONNX graph (amberwatch_training.ensemble_onnx) and its opt-in."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

pytest.importorskip("sklearn", reason="the pixel RF needs the [train] extra")

from conftest import S2_UNET as UNET  # noqa: E402

from amberwatch.errors import InputError  # noqa: E402
from amberwatch.settings import Settings  # noqa: E402
from amberwatch.store.models import Scene  # noqa: E402
from amberwatch.usecases.runs import ensemble_model  # noqa: E402
from amberwatch_training import confusers, ensemble_onnx, pixel_rf  # noqa: E402
from amberwatch_training.confuser_eval import combine  # noqa: E402

REGISTRY = Path(__file__).resolve().parents[1] / "models" / "registry"


def _session(path: Path) -> ort.InferenceSession:
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    return ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])


@pytest.fixture(scope="module")
def chips(s2_scene):
    lc = confusers.LandCover.of(s2_scene)
    return [confusers.make_chip(s2_scene, lc, k, "winter", "val", confusers.seed_of(k, "winter", "val", 0), size=96)
            for k in ("sand_quarry", "beach")]


def test_ensemble_graph_equals_the_numpy_mean_ensemble(chips, tmp_path):
    x = np.stack([c.rendered.stack for c in chips])
    y = np.stack([c.rendered.label for c in chips])
    clf = pixel_rf.train(x, y, trees=5, depth=6, per_chip=200)
    assert sorted(clf.classes_.tolist()) == [0, 1, 2], "both chips have a control site with pits and ponds"
    rf_path = pixel_rf.export(clf, tmp_path / "rf.onnx")
    ens = _session(ensemble_onnx.build(UNET, rf_path, tmp_path / "ens.onnx"))
    unet, rf = _session(UNET), pixel_rf.PixelRF(rf_path)
    got = ens.run(None, {"reflectance": x})[0]
    want_unet = unet.run(None, {"reflectance": x})[0]
    assert got.shape == want_unet.shape == (2, 3, 96, 96)
    assert np.abs(got.sum(axis=1) - 1).max() < 1e-5
    for i in range(2):
        ref = combine(want_unet[i], rf(x[i]), "mean")
        mine = np.rint(np.clip(got[i, 1:], 0, 1) * 255).astype(np.uint8)
        assert np.abs(mine.astype(int) - ref.astype(int)).max() <= 1
        assert not np.array_equal(mine, combine(want_unet[i], None, "unet"))  # the forest does change the output


def test_registered_ensemble_follows_the_model_contract(chips):
    path = REGISTRY / "s2-unet-rf" / "1.0.0" / "model.onnx"
    if not path.exists():
        pytest.skip("no s2-unet-rf in the registry")
    sess = _session(path)
    (inp,), (out,) = sess.get_inputs(), sess.get_outputs()
    assert inp.name == "reflectance" and out.name == "probabilities" and inp.shape[1] == 10
    p = sess.run(None, {"reflectance": chips[0].rendered.stack[None]})[0]
    assert p.shape == (1, 3, 96, 96) and np.abs(p.sum(axis=1) - 1).max() < 1e-5


def test_ensemble_option_resolves_the_cards_ensemble_model():
    settings = Settings(models_dir=REGISTRY)
    s2 = Scene(family="sentinel2")
    if not (REGISTRY / "s2-unet-rf").exists():
        pytest.skip("no s2-unet-rf in the registry")
    assert ensemble_model(settings, s2, None) == "s2-unet-rf"
    assert ensemble_model(settings, s2, "s2-unet@1.2.1") == "s2-unet-rf"
    with pytest.raises(InputError, match=r"s2-unet@1\.2\.0 has no U-Net \+ RF ensemble"):
        ensemble_model(settings, s2, "s2-unet@1.2.0")
    with pytest.raises(InputError, match="has no U-Net"):
        ensemble_model(settings, Scene(family="landsat"), None)


def test_registered_ensemble_runs_through_the_service_window_loop(chips, tmp_path):
    """The opt-in model runs where any model runs: ``detect.segment.predict_probabilities`` on a reflectance COG."""
    from datetime import UTC, datetime

    import rasterio
    import shapely

    from amberwatch.detect import predict_probabilities
    from amberwatch.detect.registry import get_model
    from amberwatch.types import REFLECTANCE_SCALE, IngestedScene

    if not (REGISTRY / "s2-unet-rf" / "1.0.0" / "model.onnx").exists():
        pytest.skip("no s2-unet-rf in the registry")
    model = get_model(REGISTRY, "s2-unet-rf", "sentinel2", {})
    chip = chips[0]
    refl = tmp_path / "refl.tif"
    dn = np.clip(np.rint(chip.rendered.stack / REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
    transform = chip.rendered.transform
    with rasterio.open(refl, "w", driver="GTiff", width=96, height=96, count=10, dtype="uint16", crs="EPSG:32633",
                       transform=transform) as dst:
        dst.write(dn)
    bounds = (transform.c, transform.f - 960, transform.c + 960, transform.f)
    scene = IngestedScene("chip", "sentinel2a", "sentinel2", "L1C", datetime(2017, 2, 16, tzinfo=UTC),
                          list(model.input_bands), 10.0, "EPSG:32633", bounds, shapely.box(0, 0, 1, 1), refl, None, "t")
    out = predict_probabilities(scene, model, tmp_path / "p.tif", Settings(models_dir=REGISTRY, window_size=64))
    with rasterio.open(out) as src:
        probs = src.read()
    direct = _session(model.onnx_path).run(None, {"reflectance": (dn * np.float32(REFLECTANCE_SCALE))[None]})[0][0]
    mining = np.rint(np.clip(direct[1:], 0, 1) * 255).sum(0)
    assert probs.shape == (2, 96, 96) and probs.sum(0).max() > 200  # the control site is found
    # windows with context margins reproduce the whole-chip run away from the chip's border
    assert np.abs(probs.sum(0).astype(int)[16:-16, 16:-16] - mining[16:-16, 16:-16]).mean() < 2
