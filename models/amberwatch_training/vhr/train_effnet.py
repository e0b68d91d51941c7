"""Grouped cross-validation, label audit metrics, training and ONNX export of the fine-tuned EfficientNet-Lite0.

    nice -n 10 .venv/bin/python -m amberwatch_training.vhr.train_effnet \
        --data /work/shared/data/vhr/texty-chips --out models/registry/vhr-texty/2.0.0

Protocol (no chip of a test tile is ever used for fitting or for choosing a threshold):
1. tile groups as in :mod:`amberwatch_training.vhr.dataset` (overlapping tiles together);
2. grouped CV: ``StratifiedGroupKFold(folds, seed)`` over ALL chips, by tile group; inside each training part one
   more grouped split keeps 20 % of its tile groups as validation: the model is fitted on the other 80 % and the
   F1-optimal threshold is chosen on the validation chips (8-view TTA); the test fold is scored once at that
   threshold. Pooled = all test folds together, each at its own fold's threshold. Both splits are stratified on
   the original labels, so a model trained on the audited labels sees the same parts;
3. metrics on the original labels and on the audited labels (``labels_audit.csv``: chip, audited label, reason),
   with models trained on either label set (``--labels original|audited``);
4. the registered model: fitted on the development tiles (all but the held-out 20 % of tile groups of
   ``dataset.test_mask``) minus a grouped 20 % validation part for the threshold, exported to ONNX, checked
   against PyTorch, and scored once on the held-out tiles through onnxruntime; then Texty's tile rule on the
   6 example tiles.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import platform
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from amberwatch_training.vhr.dataset import ChipSet, group_folds, load_chipset, test_mask, tile_groups, tiles_digest
from amberwatch_training.vhr.effnet import (
    ARCH_WHEEL,
    WEIGHTS_WHEEL,
    ChipClassifier,
    EffnetConfig,
    _cache_dir,
    config_dict,
    export_onnx,
    fine_tune,
    load_inputs,
    onnx_predict,
    predict,
    predict_views,
    store_weights_fp16,
    trunk_views,
)
from amberwatch_training.vhr.metrics import chip_metrics, choose_threshold, pooled_metrics

log = logging.getLogger(__name__)

AUDIT_CSV = Path(__file__).with_name("labels_audit.csv")
MODEL_NAME = "vhr-texty"
TEXTY_F1 = 0.91


def audited_labels(chips: ChipSet, audit_csv: Path = AUDIT_CSV) -> tuple[np.ndarray, int]:
    """Labels after the audit (``chip,original,audited,reason`` rows by chip file name); number of changes."""
    y = chips.labels.copy()
    if not audit_csv.is_file():
        return y, 0
    by_name = {p.name: i for i, p in enumerate(chips.paths)}
    changed = 0
    with audit_csv.open() as f:
        for row in csv.DictReader(f):
            i = by_name.get(row["chip"])
            if i is None:
                continue
            new = 1 if row["audited"] == "positive" else 0
            changed += int(new != y[i])
            y[i] = new
    return y, changed


def cached_trunk_views(images: np.ndarray, cfg: EffnetConfig) -> Any:
    """:func:`trunk_views` of ``images``, cached on disk (outside the repository) by content and settings."""
    import hashlib

    import torch

    h = hashlib.sha1(images.tobytes())
    h.update(f"{cfg.input_size}-{cfg.frozen_blocks}-{cfg.pretrained}".encode())
    path = _cache_dir() / f"trunk-{h.hexdigest()}.pt"
    if path.is_file():
        return torch.load(path, weights_only=True)
    feats = trunk_views(ChipClassifier(cfg.pretrained, cfg.frozen_blocks), images)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(feats, path)
    return feats


def _inner_split(y: np.ndarray, groups: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """80 % fit / 20 % validation of a training part, by tile group, stratified."""
    fit, val = group_folds(y, groups, 5, seed + 101)[0]
    return fit, val


@dataclass
class FoldFit:
    """A model fitted on 80 % of a training part, its threshold and the validation part it was chosen on."""

    model: Any
    threshold: float
    validation: dict[str, Any]  # chip metrics of the validation part at ``threshold``
    val_idx: np.ndarray  # chip indices of the validation part
    p_val: np.ndarray  # their scores (8-view TTA)


def fit_with_threshold(images: np.ndarray, y: np.ndarray, groups: np.ndarray, idx: np.ndarray, cfg: EffnetConfig,
                       seed: int, feats: Any, y_split: np.ndarray | None = None) -> FoldFit:
    """Fit on 80 % of the tile groups of ``idx``; threshold (``cfg.threshold_rule``) on the other 20 % (TTA).

    ``feats``: frozen-trunk outputs of all views of all ``images`` (:func:`trunk_views`), shared by every fit.
    ``y_split``: the labels the 80/20 split is stratified on (default ``y``; the original labels keep the same
    parts whatever label set is trained on)."""
    fit, val = _inner_split((y if y_split is None else y_split)[idx], groups[idx], seed)
    model = fine_tune(images[idx[fit]], y[idx[fit]], cfg, seed=seed + cfg.fit_seed_offset, progress=True,
                      feats=feats[:, idx[fit]])
    p_val = predict_views(model, feats[:, idx[val]])
    thr = choose_threshold(y[idx[val]], p_val, cfg.threshold_rule)
    return FoldFit(model, thr, chip_metrics(y[idx[val]], p_val, thr), idx[val], p_val)


def cross_validate(chips: ChipSet, images: np.ndarray, y_train: np.ndarray, label_sets: dict[str, np.ndarray],
                   cfg: EffnetConfig, folds: int, seed: int, feats: Any,
                   save_folds: Path | None = None) -> dict[str, Any]:
    """Grouped CV (see module doc): per-fold and pooled P/R/F1 against every label set; out-of-fold scores."""
    groups = tile_groups(chips.tiles)
    oof = np.full(len(chips), np.nan)
    fold_of = np.full(len(chips), -1)
    thresholds: list[float] = []  # per fold
    y_split = label_sets["original"]  # the same folds and validation parts whatever label set is trained on
    for k, (tr, te) in enumerate(group_folds(y_split, groups, folds, seed)):
        t0 = time.time()
        ff = fit_with_threshold(images, y_train, groups, tr, cfg, seed, feats, y_split)
        model, thr = ff.model, ff.threshold
        oof[te] = predict_views(model, feats[:, te])
        thresholds.append(thr)
        if save_folds is not None:
            save_folds.mkdir(parents=True, exist_ok=True)
            np.savez(save_folds / f"fold{k}.npz", test=te, p_test=oof[te], val=ff.val_idx, p_val=ff.p_val,
                     threshold=thr)
        fold_of[te] = k
        f1 = chip_metrics(y_train[te], oof[te], thr)["f1"]
        log.info("fold %d/%d: threshold %.3f, F1 %.3f (%.0f s)", k + 1, folds, thr, f1, time.time() - t0)
    out: dict[str, Any] = {"folds": folds, "seed": seed,
                           "label_sets": score_label_sets(chips, oof, fold_of, thresholds, label_sets)}
    out["oof"] = oof
    out["fold_of"] = fold_of
    return out


def score_label_sets(chips: ChipSet, oof: np.ndarray, fold_of: np.ndarray, thresholds: list[float],
                     label_sets: dict[str, np.ndarray]) -> dict[str, Any]:
    """Per-fold and pooled metrics of out-of-fold scores (each fold at its own threshold) for every label set."""
    thr_of = np.asarray(thresholds, dtype=float)[fold_of]
    pred = (oof >= thr_of).astype(float)
    out: dict[str, Any] = {}
    for name, y in label_sets.items():
        per_fold = []
        for k in range(len(thresholds)):
            m = fold_of == k
            row = chip_metrics(y[m], oof[m], float(thresholds[k]))
            row["fold"] = k
            row["tiles"] = int(len(set(chips.tiles[m])))
            per_fold.append(row)
        pooled = pooled_metrics(y, pred, oof)
        out[name] = {"per_fold": per_fold, "pooled": pooled,
                     "f1_fold_mean": round(float(np.mean([r["f1"] for r in per_fold])), 4)}
    return out


def rescore_audit(data_dir: Path, model_dir: Path, oof_csv: Path) -> dict[str, Any]:
    """Re-score a finished grouped CV (its out-of-fold CSV and per-fold thresholds) against the current audit CSV;
    updates ``metrics.json`` (the audit is made after the CV, from its out-of-fold scores)."""
    chips = load_chipset(Path(data_dir))
    by_name = {p.name: i for i, p in enumerate(chips.paths)}
    oof = np.full(len(chips), np.nan)
    fold_of = np.full(len(chips), -1)
    with Path(oof_csv).open() as f:
        for row in csv.DictReader(f):
            i = by_name[row["chip"]]
            oof[i], fold_of[i] = float(row["probability"]), int(row["fold"])
    if np.isnan(oof).any():
        raise ValueError(f"{oof_csv} does not cover every chip of {data_dir}")
    path = Path(model_dir) / "metrics.json"
    metrics = json.loads(path.read_text())
    cv = metrics["grouped_cv"]
    thresholds = [r["threshold"] for r in cv["label_sets"]["original"]["per_fold"]]
    y_audit, n_changed = audited_labels(chips)
    cv["label_sets"] = score_label_sets(chips, oof, fold_of, thresholds,
                                        {"original": chips.labels, "audited": y_audit})
    if (Path(model_dir) / "model.onnx").is_file():  # the registered model's held-out tiles, both label sets
        from amberwatch.vhr.io import read_rgb
        from amberwatch.vhr.model import load_vhr_model

        test = np.flatnonzero(test_mask(chips, tile_groups(chips.tiles)))
        vhr = load_vhr_model(model_dir)
        p = vhr.score_many([read_rgb(chips.paths[i]) for i in test])
        for name, ys in (("original", chips.labels), ("audited", y_audit)):
            metrics["held_out_by_labels"][name] = chip_metrics(ys[test], p, vhr.threshold)
    metrics["data"]["positive_audited"] = int(y_audit.sum())
    metrics["data"]["audit_changes"] = n_changed
    path.write_text(json.dumps(metrics, indent=2, default=float))
    return cv


def score_saved_folds(chips: ChipSet, folds: list[dict[str, np.ndarray]], label_sets: dict[str, np.ndarray],
                      rule: str, y_fit: np.ndarray | None = None) -> dict[str, Any]:
    """:func:`score_label_sets` of saved folds (``test``, ``p_test``, ``val``, ``p_val``): each fold's threshold
    chosen with ``rule`` on its validation scores against ``y_fit`` (default: the original labels)."""
    y_fit = label_sets["original"] if y_fit is None else y_fit
    oof = np.full(len(y_fit), np.nan)
    fold_of = np.full(len(y_fit), -1)
    thresholds = []
    for k, f in enumerate(folds):
        thresholds.append(choose_threshold(y_fit[f["val"]], f["p_val"], rule))
        oof[f["test"]], fold_of[f["test"]] = f["p_test"], k
    if np.isnan(oof).any():
        raise ValueError("do not cover every chip")
    return score_label_sets(chips, oof, fold_of, thresholds, label_sets)


def rescore_folds(data_dir: Path, model_dir: Path, folds_dir: Path, rule: str) -> dict[str, Any]:
    """Re-derive every CV fold's threshold with ``rule`` from the validation scores a finished grouped CV saved
    (``--save-folds``), re-score the saved test-fold scores, and update ``metrics.json`` (no refitting; the test
    folds are not used for the choice)."""
    chips = load_chipset(Path(data_dir))
    y_audit, _ = audited_labels(chips)
    label_sets = {"original": chips.labels, "audited": y_audit}
    path = Path(model_dir) / "metrics.json"
    metrics = json.loads(path.read_text())
    folds = [dict(np.load(Path(folds_dir) / f"fold{k}.npz")) for k in range(metrics["grouped_cv"]["folds"])]
    y_fit = label_sets[metrics["model"]["trained_on_labels"]]
    try:
        metrics["grouped_cv"]["label_sets"] = score_saved_folds(chips, folds, label_sets, rule, y_fit)
    except ValueError as exc:
        raise ValueError(f"the folds in {folds_dir} {exc} of {data_dir}") from None
    metrics["config"] = config_dict(replace(EffnetConfig(), **{**metrics["config"], "threshold_rule": rule}))
    path.write_text(json.dumps(metrics, indent=2, default=float))
    return dict(metrics["grouped_cv"])


def _example_tiles(data_dir: Path, model_dir: Path, flag_count: int = 2) -> dict[str, Any]:
    from amberwatch_training.vhr.train import _example_tiles as rule

    return rule(data_dir, model_dir, flag_count)


def train(data_dir: Path, out_dir: Path, *, seed: int = 0, cfg: EffnetConfig | None = None, folds: int = 5,
          labels: str = "original", cv: bool = True, max_chips: int | None = None, version: str | None = None,
          oof_csv: Path | None = None, example_tiles: bool = True, fp16: bool = True,
          cv_only: bool = False, save_folds: Path | None = None) -> dict[str, Any]:
    """Grouped CV (optional), then the registered model: model.onnx, mlm.json, metrics.json in ``out_dir``."""
    from amberwatch_training.vhr.train import _subset

    t0 = time.time()
    cfg = cfg or EffnetConfig()
    data_dir, out_dir = Path(data_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    chips = _subset(load_chipset(data_dir), max_chips, seed)
    y_audit, n_changed = audited_labels(chips)
    label_sets = {"original": chips.labels, "audited": y_audit}
    if labels not in label_sets:
        raise ValueError(f"labels must be one of {', '.join(label_sets)}")
    y = label_sets[labels]
    images = load_inputs(chips.paths, cfg.input_size)
    feats = cached_trunk_views(images, cfg)  # frozen ImageNet trunk: the same for every fit
    metrics: dict[str, Any] = {
        "model": {"name": MODEL_NAME, "version": version or out_dir.name, "kind": "effnet-lite0-finetuned",
                  "trained_on_labels": labels},
        "config": config_dict(cfg),
        "data": {"chips": len(chips), "positive_original": int(chips.labels.sum()),
                 "positive_audited": int(y_audit.sum()), "audit_changes": n_changed,
                 "tiles": int(len(set(chips.tiles))), "subset": max_chips},
    }
    if cv:
        res = cross_validate(chips, images, y, label_sets, cfg, folds, seed, feats, save_folds)
        if oof_csv is not None:
            with Path(oof_csv).open("w", newline="") as f:
                w = csv.writer(f)
                w.writerow(["chip", "label", "audited", "fold", "probability"])
                for i, p in enumerate(chips.paths):
                    w.writerow([p.name, int(chips.labels[i]), int(y_audit[i]), int(res["fold_of"][i]),
                                f"{res['oof'][i]:.5f}"])
        metrics["grouped_cv"] = {k: v for k, v in res.items() if k not in ("oof", "fold_of")}
        (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
        if cv_only:
            return metrics
    elif (out_dir / "metrics.json").is_file():  # keep the CV of an earlier --cv-only run of the same folder
        earlier = json.loads((out_dir / "metrics.json").read_text())
        if "grouped_cv" in earlier and earlier.get("config") == metrics["config"]:
            metrics["grouped_cv"] = earlier["grouped_cv"]

    # the registered model: development tiles only; held-out tiles scored once through ONNX
    groups = tile_groups(chips.tiles)
    is_test = test_mask(chips, groups)  # on the original labels: the same held-out tiles as 1.x
    dev, test = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    ff = fit_with_threshold(images, y, groups, dev, cfg, seed, feats, chips.labels)
    model, thr, val = ff.model, ff.threshold, ff.validation
    onnx_path = out_dir / "model.onnx"
    export_onnx(model, onnx_path, cfg.input_size)
    native = predict(model, images[test])
    fp32_diff = float(np.abs(onnx_predict(onnx_path, images[test]) - native).max()) if len(test) else 0.0
    storage = store_weights_fp16(onnx_path) if fp16 else {"weights_stored_as": "float32"}
    from amberwatch_training.vhr.mlm import effnet_card

    card = effnet_card(MODEL_NAME, version or out_dir.name, thr, cfg, n_chips=len(chips), n_dev=len(dev),
                       n_test=len(test), seed=seed, labels=labels,
                       total_parameters=sum(p.numel() for p in model.parameters()))
    (out_dir / "mlm.json").write_text(json.dumps(card, indent=2))
    from amberwatch.vhr.io import read_rgb
    from amberwatch.vhr.model import load_vhr_model

    vhr = load_vhr_model(out_dir)
    onnx_p = vhr.score_many([read_rgb(chips.paths[i]) for i in test])
    held_out: dict[str, Any] = {}
    for name, ys in label_sets.items():
        held_out[name] = chip_metrics(ys[test], onnx_p, thr)
    held_out["tiles"] = int(len(set(chips.tiles[test])))
    held_out["tiles_sha256"] = tiles_digest(chips.tiles[test])
    metrics.update({
        "threshold": round(thr, 6),
        "threshold_chosen_on": "grouped 20 % validation part of the development tiles (8-view TTA), rule "
                               f"{cfg.threshold_rule}",
        "validation": val,
        # original labels, as for 1.x (the regression test recomputes this); both label sets below
        "held_out": held_out["original"] | {"tiles": held_out["tiles"], "tiles_sha256": held_out["tiles_sha256"]},
        "held_out_by_labels": held_out,
        "onnx_vs_torch_max_abs_diff": round(float(np.abs(onnx_p - native).max()), 6) if len(test) else 0.0,
        "onnx_fp32_vs_torch_max_abs_diff": round(fp32_diff, 7),
        "held_out_torch_fp32": chip_metrics(y[test], native, thr) if len(test) else {},
        "onnx": {"bytes": onnx_path.stat().st_size, **storage},
        "texty_f1": TEXTY_F1,
        "weights": {"backbone": f"EfficientNet-Lite0 ImageNet, {WEIGHTS_WHEEL} (Apache-2.0)",
                    "architecture": ARCH_WHEEL},
        "trained_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "platform": platform.platform(),
        "seconds": round(time.time() - t0, 1),
    })
    if example_tiles:
        metrics["example_tiles"] = _example_tiles(data_dir, out_dir)
    (out_dir / "metrics.json").write_text(json.dumps(metrics, indent=2, default=float))
    return metrics


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True, help="texty-chips (positive/, negative/, example-tiles/)")
    ap.add_argument("--out", type=Path, required=True, help="registry folder to write")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--epochs", type=int, default=EffnetConfig.epochs)
    ap.add_argument("--size", type=int, default=EffnetConfig.input_size, help="input side in pixels")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (2 at most on a shared machine)")
    ap.add_argument("--frozen", type=int, default=EffnetConfig.frozen_blocks, help="MBConv blocks kept frozen")
    ap.add_argument("--label-smoothing", type=float, default=EffnetConfig.label_smoothing)
    ap.add_argument("--mixup", type=float, default=EffnetConfig.mixup, help="Beta(a, a) feature-map mixup (0: off)")
    ap.add_argument("--members", type=int, default=1, help="fine-tuned tops averaged over one frozen trunk")
    ap.add_argument("--threshold-rule", choices=("f1", "f1_bootstrap"), default=EffnetConfig.threshold_rule,
                    help="threshold on the validation part: F1 argmax, or the median of bootstrap argmaxes")
    ap.add_argument("--rescore-folds", type=Path, default=None, help="only re-derive the thresholds of the "
                    "finished CV of --out with --threshold-rule from the fold scores it saved (--save-folds)")
    ap.add_argument("--save-folds", type=Path, default=None,
                    help="write each CV fold's validation/test indices and scores here (outside the repo)")
    ap.add_argument("--fit-seed-offset", type=int, default=0, help="another fine-tuning seed on the same folds "
                    "and splits (ensemble members)")
    ap.add_argument("--labels", choices=("original", "audited"), default="original")
    ap.add_argument("--no-cv", action="store_true", help="skip the grouped CV (keeps the CV of an earlier run "
                    "with the same settings in the folder's metrics.json)")
    ap.add_argument("--cv-only", action="store_true", help="grouped CV only (writes metrics.json)")
    ap.add_argument("--max-chips", type=int, default=None, help="random subset (tests)")
    ap.add_argument("--oof-csv", type=Path, default=None, help="write out-of-fold scores here (outside the repo)")
    ap.add_argument("--rescore-audit", action="store_true", help="only re-score the finished CV of --out from "
                    "--oof-csv against the current labels_audit.csv")
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    if a.rescore_folds:
        print(json.dumps(rescore_folds(a.data, a.out, a.rescore_folds, a.threshold_rule), indent=2, default=float))
        return
    if a.rescore_audit:
        print(json.dumps(rescore_audit(a.data, a.out, a.oof_csv), indent=2, default=float))
        return
    cfg = replace(EffnetConfig(), epochs=a.epochs, input_size=a.size, threads=a.threads, frozen_blocks=a.frozen,
                  label_smoothing=a.label_smoothing, mixup=a.mixup, members=a.members,
                  fit_seed_offset=a.fit_seed_offset, threshold_rule=a.threshold_rule)
    m = train(a.data, a.out, seed=a.seed, cfg=cfg, folds=a.folds, labels=a.labels, cv=not a.no_cv,
              max_chips=a.max_chips, oof_csv=a.oof_csv, cv_only=a.cv_only, save_folds=a.save_folds)
    print(json.dumps({k: m[k] for k in ("grouped_cv", "held_out_by_labels", "threshold", "example_tiles",
                                        "onnx_vs_torch_max_abs_diff") if k in m}, indent=2, default=float))


if __name__ == "__main__":
    main()
