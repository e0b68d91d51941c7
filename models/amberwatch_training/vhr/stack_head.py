"""Ensemble head of ``vhr-texty`` 2.2.0: the fine-tuned CNN's probability + a LightGBM on the 225 hand-made
features, combined by a logistic regression, run as a **cascade** (hand features only for chips whose CNN
probability lies in a band around the decision boundary; :mod:`amberwatch.vhr.stack`).

Grouped CV (``--folds``: the folds a grouped CV of :mod:`amberwatch_training.vhr.train_effnet` saved with
``--save-folds``). Per outer fold: the LightGBM is fitted on the fit part (the fold's training tiles minus its
validation part); the logistic head (inputs: the two logits), its threshold (``threshold_rule``) and the cascade's
band are chosen on the validation part; the test fold is scored once. No chip of a test fold is used for any fit or
choice.

Band (:func:`choose_band`): the CNN-probability range in which the head's decision still depends on the LightGBM,
for LightGBM logits within the range seen on the validation chips; widened by ``margin`` (logit units) on each
side and stretched to contain the CNN's own threshold. Outside it the head and the CNN agree for every such chip.

Registration (``--register``): the same recipe on the development tiles with the registered CNN (2.1.0): LightGBM on
2.1.0's fit part, head/threshold/band on 2.1.0's validation part (the CNN never saw those chips), held-out tiles
scored once through the service (``amberwatch.vhr.model``).

    nice -n 15 .venv/bin/python -m amberwatch_training.vhr.stack_head --data /work/shared/data/vhr/texty-chips \
        --folds /tmp/vhr-folds --cascade
    nice -n 15 .venv/bin/python -m amberwatch_training.vhr.stack_head --data /work/shared/data/vhr/texty-chips \
        --folds /tmp/vhr-folds --register models/registry/vhr-texty/2.2.0 --cnn models/registry/vhr-texty/2.1.0
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from amberwatch.vhr.stack import StackHead, logit, sigmoid
from amberwatch_training.vhr.dataset import compute_features, load_chipset
from amberwatch_training.vhr.metrics import chip_metrics, choose_threshold, pooled_metrics

BAND_MARGIN = 0.25  # logit units added on each side of the band
GBM_PARAMS: dict[str, Any] = {"n_estimators": 400, "num_leaves": 15, "learning_rate": 0.05, "is_unbalance": True}


def fit_gbm(x: np.ndarray, y: np.ndarray, seed: int = 0) -> Any:
    """The LightGBM on the hand-made features (one thread)."""
    import lightgbm as lgb

    return lgb.LGBMClassifier(**GBM_PARAMS, n_jobs=1, random_state=seed, verbose=-1).fit(x, y)


def choose_band(coef_cnn: float, coef_gbm: float, intercept: float, threshold: float, cnn_threshold: float,
                gbm_logits: np.ndarray, margin: float = BAND_MARGIN) -> tuple[float, float]:
    """CNN-probability band [lo, hi] outside which the head's decision is the same for every LightGBM logit in the
    range of ``gbm_logits`` (the validation chips'), widened by ``margin`` logits and containing ``cnn_threshold``.

    A head that does not rise with the CNN's logit (``coef_cnn <= 0``: a useless CNN) gets the whole range [0, 1]:
    every chip needs the features and the cascade is the full head."""
    if coef_cnn <= 0:
        return 0.0, 1.0
    t = float(logit(threshold))
    edges = [(t - intercept - coef_gbm * g) / coef_cnn for g in (float(gbm_logits.min()), float(gbm_logits.max()))]
    c = float(logit(cnn_threshold))
    lo, hi = min(*edges, c) - margin, max(*edges, c) + margin
    return float(sigmoid(np.array(lo))), float(sigmoid(np.array(hi)))


def fit_stack(x_fit: np.ndarray, y_fit: np.ndarray, x_val: np.ndarray, y_val: np.ndarray, p_cnn_val: np.ndarray,
              cnn_threshold: float, *, rule: str = "f1_bootstrap", seed: int = 0,
              margin: float = BAND_MARGIN) -> tuple[Any, StackHead]:
    """LightGBM on the fit part; logistic head, its threshold and the cascade band on the validation part."""
    from sklearn.linear_model import LogisticRegression

    gbm = fit_gbm(x_fit, y_fit, seed)
    g_val = logit(gbm.predict_proba(x_val)[:, 1])
    z_val = np.c_[logit(p_cnn_val), g_val]
    lr = LogisticRegression(C=1.0).fit(z_val, y_val)
    a, b, c = float(lr.coef_[0][0]), float(lr.coef_[0][1]), float(lr.intercept_[0])
    thr = choose_threshold(y_val, lr.predict_proba(z_val)[:, 1], rule)
    lo, hi = choose_band(a, b, c, thr, cnn_threshold, g_val, margin)
    return gbm, StackHead(a, b, c, thr, cnn_threshold, lo, hi)


def head_cv(data_dir: Path, folds_dir: Path, *, max_chips: int | None = None, seed: int = 0,
            threshold_rule: str = "f1_bootstrap", margin: float = BAND_MARGIN) -> dict[str, Any]:
    """Pooled metrics of the CNN alone, the LightGBM alone, the full head and the cascade, on both label sets;
    per fold: head coefficients, thresholds, band, share of test chips that needed features."""
    from amberwatch_training.vhr.train import _subset
    from amberwatch_training.vhr.train_effnet import audited_labels

    chips = _subset(load_chipset(Path(data_dir)), max_chips, seed)
    y = chips.labels
    label_sets = {"original": y, "audited": audited_labels(chips)[0]}
    x = compute_features(chips.paths, n_jobs=1, progress=False)
    kinds = ("cnn", "gbm", "head", "cascade")
    score = {k: np.full(len(y), np.nan) for k in kinds}
    decision = {k: np.zeros(len(y)) for k in kinds}
    featured = np.zeros(len(y), dtype=bool)
    folds = sorted(Path(folds_dir).glob("fold*.npz"))
    if not folds:
        raise FileNotFoundError(f"no fold*.npz in {folds_dir}: run train_effnet with --save-folds first")
    per_fold = []
    for path in folds:
        f = np.load(path)
        te, va = f["test"], f["val"]
        fit = np.setdiff1d(np.setdiff1d(np.arange(len(y)), te), va)
        t_cnn = choose_threshold(y[va], f["p_val"], threshold_rule)
        gbm, head = fit_stack(x[fit], y[fit], x[va], y[va], f["p_val"], t_cnn, rule=threshold_rule, seed=seed,
                              margin=margin)
        g_val, g_test = gbm.predict_proba(x[va])[:, 1], gbm.predict_proba(x[te])[:, 1]
        p_test = f["p_test"]
        h_test = head.head_probability(p_test, g_test)
        band = head.in_band(p_test)
        featured[te] = band
        score["cnn"][te], decision["cnn"][te] = p_test, p_test >= t_cnn
        score["gbm"][te] = g_test
        decision["gbm"][te] = g_test >= choose_threshold(y[va], g_val, threshold_rule)
        score["head"][te], decision["head"][te] = h_test, h_test >= head.threshold
        score["cascade"][te] = head.scores(p_test, g_test)
        decision["cascade"][te] = score["cascade"][te] >= 0.5
        per_fold.append({"fold": path.stem, "test_chips": len(te), **head.to_properties(),
                         "featured_share": round(float(band.mean()), 4),
                         "cascade_differs_from_head": int((decision["cascade"][te] != decision["head"][te]).sum())})
    if np.isnan(score["cnn"]).any():
        raise ValueError(f"the folds in {folds_dir} do not cover every chip of {data_dir}")
    out: dict[str, Any] = {"folds": len(folds), "threshold_rule": threshold_rule, "band_margin_logit": margin,
                           "featured_share": round(float(featured.mean()), 4),
                           "cascade_differs_from_head": int((decision["cascade"] != decision["head"]).sum()),
                           "per_fold": per_fold}
    for k in kinds:
        out[k] = {name: pooled_metrics(ys, decision[k], score[k]) for name, ys in label_sets.items()}
    return out


def convert_gbm(gbm: Any, path: Path) -> None:
    """LightGBM -> ONNX (onnxmltools): input ``features`` float32 [N, 225], outputs label + probabilities [N, 2]."""
    import onnx
    from onnxmltools import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    from amberwatch.vhr.features import N_FEATURES

    onx = convert_lightgbm(gbm, initial_types=[("features", FloatTensorType([None, N_FEATURES]))], zipmap=False,
                           target_opset=15)
    for out in onx.graph.output:  # the converter declares ``label`` as [1]: make the batch axis symbolic
        out.type.tensor_type.shape.dim[0].dim_param = "N"
    onnx.checker.check_model(onx)
    path.write_bytes(onx.SerializeToString())


def stack_card(cnn_card: dict[str, Any], version: str, head: StackHead, gbm: Any) -> dict[str, Any]:
    """2.1.0's card with the 2.2.0 fields: input kind, the stack's coefficients/thresholds/band, the gbm asset."""
    import lightgbm as lgb

    from amberwatch.vhr.features import FEATURE_VERSION, N_FEATURES

    card = json.loads(json.dumps(cnn_card))
    card["id"] = f"vhr-texty-{version}"
    p = card["properties"]
    p["description"] = (
        "Chip classifier for very-high-resolution RGB imagery (~0.37 m/px): is this SLIC superpixel amber mining? "
        "Texty's 2018 method with EfficientNet-Lite0 fine-tuned on the Texty chips (vhr-texty 2.1.0's graph, mean "
        "over 8 rotations/mirrors), plus a cascade: chips whose CNN probability is inside a band get "
        f"{N_FEATURES} hand-made colour/texture features, a LightGBM on them, and a logistic head on [CNN logit, "
        "LightGBM logit] decides.")
    p["mlm:architecture"] = (p["mlm:architecture"] + f"; cascade: LightGBM {gbm.booster_.num_trees()} trees "
                             f"(15 leaves) on {N_FEATURES} hand-made features + logistic head, inside a CNN band")
    p["amberwatch:version"] = version
    p["amberwatch:threshold"] = 0.5
    p["amberwatch:input_kind"] = "image_square_stack"
    p["amberwatch:feature_version"] = FEATURE_VERSION
    p["amberwatch:n_features"] = N_FEATURES
    p["amberwatch:stack"] = {k: (round(v, 6) if isinstance(v, float) else [round(b, 6) for b in v])
                             for k, v in head.to_properties().items()}
    p["amberwatch:score"] = ("re-centred: outside the band sigmoid(logit(p_cnn) - logit(cnn_threshold)), inside "
                             "it sigmoid(logit(p_head) - logit(threshold)); positive at >= 0.5")
    p["amberwatch:gbm_framework"] = f"lightgbm {lgb.__version__}"
    p["amberwatch:limits"] = [s for s in p.get("amberwatch:limits", []) if "grouped-CV F1" not in s] + [
        "hand-made features cost ~0.3-1 s a chip on one core; only chips inside the band pay it"]
    card["assets"]["model"]["title"] = f"ONNX vhr-texty {version}: the CNN (2.1.0's graph)"
    card["assets"]["gbm"] = {"href": "./gbm.onnx", "type": "application/octet-stream; application=onnx",
                             "title": f"ONNX LightGBM on the {N_FEATURES} hand-made features (feature version "
                                      f"{FEATURE_VERSION})", "roles": ["mlm:model"], "mlm:artifact_type": "onnx"}
    return card


def register(data_dir: Path, out_dir: Path, cnn_dir: Path, folds_dir: Path | None, *, seed: int = 0,
             threshold_rule: str = "f1_bootstrap", margin: float = BAND_MARGIN) -> dict[str, Any]:
    """Write ``model.onnx`` (the CNN, copied), ``gbm.onnx``, ``mlm.json`` and ``metrics.json`` to ``out_dir``."""
    import onnxruntime as ort

    from amberwatch.vhr.io import read_rgb
    from amberwatch.vhr.model import load_vhr_model
    from amberwatch_training.vhr.dataset import test_mask, tile_groups, tiles_digest
    from amberwatch_training.vhr.train_effnet import TEXTY_F1, _example_tiles, _inner_split, audited_labels

    t0 = time.time()
    data_dir, out_dir, cnn_dir = Path(data_dir), Path(out_dir), Path(cnn_dir)
    chips = load_chipset(data_dir)
    y = chips.labels
    y_audit, _ = audited_labels(chips)
    groups = tile_groups(chips.tiles)
    is_test = test_mask(chips, groups)
    dev, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    fit_i, val_i = _inner_split(y[dev], groups[dev], seed)  # the CNN's own fit/validation parts (train_effnet)
    fit, val = dev[fit_i], dev[val_i]
    cnn = load_vhr_model(cnn_dir)
    if cnn.input_kind != "image_square":
        raise ValueError(f"{cnn_dir} is not an image_square CNN")
    x = compute_features(chips.paths, n_jobs=1, progress=False)
    p_val = cnn.score_many([read_rgb(chips.paths[i]) for i in val])
    gbm, head = fit_stack(x[fit], y[fit], x[val], y[val], p_val, cnn.threshold, rule=threshold_rule, seed=seed,
                          margin=margin)
    out_dir.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(cnn_dir / "model.onnx", out_dir / "model.onnx")
    convert_gbm(gbm, out_dir / "gbm.onnx")
    sess = ort.InferenceSession(str(out_dir / "gbm.onnx"), providers=["CPUExecutionProvider"])
    p_onnx = np.asarray(sess.run(None, {"features": x})[1])[:, 1]
    gbm_diff = float(np.abs(p_onnx - gbm.predict_proba(x)[:, 1]).max())
    version = out_dir.name
    (out_dir / "mlm.json").write_text(json.dumps(stack_card(json.loads((cnn_dir / "mlm.json").read_text()),
                                                            version, head, gbm), indent=2))
    metrics: dict[str, Any] = {
        "model": {"name": "vhr-texty", "version": version, "kind": "effnet-lite0 + lightgbm cascade head",
                  "cnn": f"vhr-texty {cnn.version} (model.onnx copied)", "trained_on_labels": "original"},
        "config": {"gbm": GBM_PARAMS, "head": "sklearn LogisticRegression(C=1.0) on [logit p_cnn, logit p_gbm]",
                   "threshold_rule": threshold_rule, "band_margin_logit": margin, "seed": seed},
        "data": {"chips": len(chips), "development_chips": len(dev), "gbm_fit_chips": len(fit),
                 "head_validation_chips": len(val), "held_out_chips": len(test)},
        "stack": head.to_properties(),
        "gbm_onnx_vs_lightgbm_max_abs_diff": float(f"{gbm_diff:.3g}"),
        "gbm_onnx_bytes": (out_dir / "gbm.onnx").stat().st_size,
        "validation": {"featured_share": round(float(head.in_band(p_val).mean()), 4)},
    }
    if folds_dir is not None:
        metrics["grouped_cv"] = head_cv(data_dir, folds_dir, seed=seed, threshold_rule=threshold_rule, margin=margin)
    model = load_vhr_model(out_dir)  # the service's cascade, once, on the held-out tiles
    n0 = model.counts["featured"]
    p_test = model.score_many([read_rgb(chips.paths[i]) for i in test])
    held: dict[str, Any] = {name: chip_metrics(ys[test], p_test, model.threshold)
                            for name, ys in (("original", y), ("audited", y_audit))}
    held["featured_share"] = round((model.counts["featured"] - n0) / len(test), 4)
    p_cnn_test = cnn.score_many([read_rgb(chips.paths[i]) for i in test])
    full = head.head_probability(p_cnn_test, gbm.predict_proba(x[test])[:, 1]) >= head.threshold
    held["cascade_differs_from_full_head"] = int(((p_test >= 0.5) != full).sum())
    held["tiles"] = int(len(set(chips.tiles[test])))
    held["tiles_sha256"] = tiles_digest(chips.tiles[test])
    metrics.update({"held_out": held["original"] | {"tiles": held["tiles"], "tiles_sha256": held["tiles_sha256"]},
                    "held_out_by_labels": held, "texty_f1": TEXTY_F1,
                    "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
                    "platform": platform.platform(), "seconds": round(time.time() - t0, 1)})
    metrics["example_tiles"] = _example_tiles(data_dir, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--folds", type=Path, default=None, help="the --save-folds folder of a train_effnet CV")
    ap.add_argument("--threshold-rule", choices=("f1", "f1_bootstrap"), default="f1_bootstrap")
    ap.add_argument("--band-margin", type=float, default=BAND_MARGIN, help="logits added on each side of the band")
    ap.add_argument("--cascade", action="store_true", help="grouped CV of the cascade (with the CNN, LightGBM and "
                    "full head rows); this is also what the plain run prints")
    ap.add_argument("--register", type=Path, default=None, help="write a registry folder (e.g. "
                    "models/registry/vhr-texty/2.2.0); with --folds its metrics.json gets the grouped CV")
    ap.add_argument("--cnn", type=Path, default=Path("models/registry/vhr-texty/2.1.0"),
                    help="the registered CNN folder whose graph the stack uses (with --register)")
    a = ap.parse_args(argv)
    if a.register:
        m = register(a.data, a.register, a.cnn, a.folds, threshold_rule=a.threshold_rule, margin=a.band_margin)
        print(json.dumps({k: m.get(k) for k in ("held_out_by_labels", "stack", "gbm_onnx_vs_lightgbm_max_abs_diff",
                                                 "example_tiles")}, indent=2, default=float))
        return
    if a.folds is None:
        ap.error("--folds is needed without --register")
    print(json.dumps(head_cv(a.data, a.folds, threshold_rule=a.threshold_rule, margin=a.band_margin), indent=2))


if __name__ == "__main__":
    main()
