"""vhr-texty 2.2.0: the cascade (CNN outside the band, CNN + LightGBM logistic head inside it), its LightGBM ONNX
conversion, the registered model through the service, and the refusals of a broken stack folder.

The Texty chips are internal data: read from ../shared/data (skipped with the reason when absent).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import REPO, shared

from amberwatch.errors import InputError
from amberwatch.vhr.model import STACK_KIND, load_vhr_model
from amberwatch.vhr.stack import StackHead, logit

if str(REPO / "models") not in sys.path:  # amberwatch_training, when the package is not installed
    sys.path.append(str(REPO / "models"))

REGISTRY = REPO / "models" / "registry" / "vhr-texty"
V220 = REGISTRY / "2.2.0"


def chips_dir() -> Path:
    return shared("vhr", "texty-chips")


def test_band_contains_every_decision_the_lightgbm_can_change() -> None:
    """choose_band: for every LightGBM logit in the validation range, outside the band the head decides as the CNN
    does, so the cascade equals the full head there; inside the band the cascade is the head."""
    from amberwatch_training.vhr.stack_head import choose_band

    rng = np.random.default_rng(0)
    g_val = rng.normal(0, 3, 200)
    a, b, c, t, t_cnn = 1.4, 0.18, -0.6, 0.4, 0.55
    lo, hi = choose_band(a, b, c, t, t_cnn, g_val, margin=0.0)
    head = StackHead(a, b, c, t, t_cnn, lo, hi)
    assert 0 < lo < t_cnn < hi < 1
    p_cnn = np.linspace(0.001, 0.999, 2000)
    for g in np.linspace(g_val.min(), g_val.max(), 25):
        p_gbm = np.full_like(p_cnn, 1 / (1 + np.exp(-g)))
        full = head.head_probability(p_cnn, p_gbm) >= t
        cascade = head.scores(p_cnn, p_gbm) >= 0.5
        assert np.array_equal(cascade, full)
        out = ~head.in_band(p_cnn)
        assert np.array_equal(cascade[out], p_cnn[out] >= t_cnn)
    # the band is tight: just inside each edge some LightGBM logit in range flips the head's decision
    for edge in (lo * 1.01, hi * 0.99):
        z = a * logit(edge) + b * np.array([g_val.min(), g_val.max()]) + c
        assert (z >= logit(t)).any() and (z < logit(t)).any()
    assert choose_band(-0.1, b, c, t, t_cnn, g_val) == (0.0, 1.0)  # a useless CNN: the full head everywhere


def test_stack_scores_are_each_stages_decision_re_centred_at_one_half() -> None:
    head = StackHead(1.5, 0.2, -0.5, threshold=0.3, cnn_threshold=0.6, band_lo=0.4, band_hi=0.8)
    p_cnn = np.array([0.1, 0.59, 0.61, 0.9, 0.45, 0.45])
    p_gbm = np.array([np.nan, 0.5, 0.5, np.nan, 0.01, 0.99])  # NaN outside the band is never read
    s = head.scores(p_cnn, p_gbm)
    assert np.array_equal(head.in_band(p_cnn), [False, True, True, False, True, True])
    assert s[0] < 0.5 and s[3] > 0.5  # outside: the CNN at its own threshold 0.6
    assert s[0] == pytest.approx(1 / (1 + np.exp(-(logit(0.1) - logit(0.6)))))
    h = head.head_probability(p_cnn[1:3], p_gbm[1:3])
    assert np.array_equal(s[1:3] >= 0.5, h >= 0.3)  # inside: the head at its threshold 0.3, not the CNN's
    assert s[4] < s[5]  # the LightGBM moves in-band chips
    assert StackHead.from_properties(head.to_properties()) == head
    with pytest.raises(ValueError, match="band"):
        StackHead.from_properties({**head.to_properties(), "band": [0.9, 0.1]})


def test_converted_gbm_onnx_matches_lightgbm(tmp_path: Path) -> None:
    """convert_gbm: onnxruntime gives LightGBM's own probabilities (real chips' hand-made features)."""
    import onnxruntime as ort

    from amberwatch_training.vhr.dataset import compute_features, load_chipset
    from amberwatch_training.vhr.stack_head import convert_gbm, fit_gbm
    from amberwatch_training.vhr.train import _subset

    chips = _subset(load_chipset(chips_dir()), 60, 0)
    x = compute_features(chips.paths, n_jobs=1, progress=False)
    gbm = fit_gbm(x, chips.labels)
    convert_gbm(gbm, tmp_path / "gbm.onnx")
    sess = ort.InferenceSession(str(tmp_path / "gbm.onnx"), providers=["CPUExecutionProvider"])
    p = np.asarray(sess.run(None, {"features": x})[1])[:, 1]
    want = gbm.predict_proba(x)[:, 1]
    assert np.abs(p - want).max() < 1e-5 and want.std() > 0.05
    assert sess.get_outputs()[0].shape == ["N"]  # no fixed batch size declared on the label output
    recorded = json.loads((V220 / "metrics.json").read_text())
    assert recorded["gbm_onnx_vs_lightgbm_max_abs_diff"] < 1e-5  # the registered gbm.onnx was checked the same way


def test_registered_2_2_0_scores_real_superpixels_as_the_cascade() -> None:
    """2.2.0 through the service on the superpixels of a mining and a non-mining example tile: the CNN part is
    2.1.0's graph, only in-band chips get features, and the scores equal CNN / full head computed by hand."""
    import onnxruntime as ort

    from amberwatch.detect.registry import load_model
    from amberwatch.vhr.features import extract_features
    from amberwatch.vhr.io import read_rgb
    from amberwatch.vhr.superpixels import tile_superpixels

    assert load_model(V220).onnx_path == V220 / "model.onnx"  # the registry's file is the CNN, not gbm.onnx
    model = load_vhr_model(V220)
    assert model.input_kind == STACK_KIND and model.stack is not None and model.threshold == 0.5
    assert model.gbm_session is not None and model.gbm_session.get_providers()[0] == model.provider
    cnn = load_vhr_model(REGISTRY / "2.1.0")
    gbm = ort.InferenceSession(str(V220 / "gbm.onnx"), providers=["CPUExecutionProvider"])
    positives = {}
    for name in ("positive1", "negative1"):
        _, sps = tile_superpixels(read_rgb(chips_dir() / "example-tiles" / f"{name}.png"))
        crops = [s.crop for s in sps]
        before = dict(model.counts)
        s = model.score_many(crops)
        p_cnn = cnn.score_many(crops)
        band = model.stack.in_band(p_cnn)
        assert model.counts["featured"] - before["featured"] == band.sum()
        assert model.counts["scored"] - before["scored"] == len(crops)
        assert np.array_equal(s[~band] >= 0.5, p_cnn[~band] >= cnn.threshold)  # outside: the CNN decides
        if band.any():
            x = np.stack([extract_features(crops[i]) for i in np.flatnonzero(band)])
            p_gbm = np.asarray(gbm.run(None, {"features": x})[1])[:, 1]
            full = model.stack.head_probability(p_cnn[band], p_gbm)
            assert np.array_equal(s[band] >= 0.5, full >= model.stack.threshold)  # inside: the head decides
        positives[name] = int((s >= model.threshold).sum())
    assert positives["positive1"] > 2 and positives["negative1"] <= 2, positives


def _copy_of(tmp_path: Path, *, gbm: bytes | None = None, **props: object) -> Path:
    out = tmp_path / "vhr-texty" / "9.9.9"
    out.mkdir(parents=True)
    (out / "model.onnx").symlink_to(V220 / "model.onnx")
    if gbm is not None:
        (out / "gbm.onnx").write_bytes(gbm)
    card = json.loads((V220 / "mlm.json").read_text())
    card["properties"].update(props)
    (out / "mlm.json").write_text(json.dumps(card))
    return out


@pytest.mark.parametrize(("case", "message"), [
    ("missing", "gbm.onnx is missing"),
    ("garbage", "gbm.onnx is not a loadable ONNX model"),
    ("wrong_input", r"not \[N, 225\]"),
    ("feature_version", "features version '1'"),
    ("no_stack", "amberwatch:stack is missing or malformed"),
])
def test_broken_stack_folder_is_refused_clearly(tmp_path: Path, case: str, message: str) -> None:
    good = (V220 / "gbm.onnx").read_bytes()
    if case == "missing":
        folder = _copy_of(tmp_path)
    elif case == "garbage":
        folder = _copy_of(tmp_path, gbm=b"not an onnx file")
    elif case == "wrong_input":
        folder = _copy_of(tmp_path, gbm=(REGISTRY / "2.1.0" / "model.onnx").read_bytes())
    elif case == "feature_version":
        folder = _copy_of(tmp_path, gbm=good, **{"amberwatch:feature_version": "1"})
    else:
        folder = _copy_of(tmp_path, gbm=good, **{"amberwatch:stack": {"band": [0.1, 0.9]}})
    with pytest.raises(InputError, match=message) as err:
        load_vhr_model(folder)
    assert str(tmp_path) not in str(err.value)  # names the model, not server paths
