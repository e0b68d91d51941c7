"""Ensemble head, grouped CV only (not a registered model): the fine-tuned CNN's probability + a LightGBM on the
225 hand-made features, combined by a logistic regression.

Reads the folds a grouped CV of :mod:`amberwatch_training.vhr.train_effnet` saved (``--save-folds``). Per outer fold:
the LightGBM is fitted on the fit part (the fold's training tiles minus its validation part); the logistic head
(inputs: the two logits) and the threshold (``threshold_rule``) are fitted on the validation part; the test fold
is scored once. No chip of a test fold is used for any fit or choice.

    nice -n 15 .venv/bin/python -m amberwatch_training.vhr.stack_head --data /work/shared/data/vhr/texty-chips \
        --folds /tmp/vhr-folds
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import numpy as np

from amberwatch_training.vhr.dataset import compute_features, load_chipset
from amberwatch_training.vhr.metrics import choose_threshold, pooled_metrics


def _logit(p: np.ndarray) -> np.ndarray:
    q = np.clip(p, 1e-6, 1 - 1e-6)
    return np.asarray(np.log(q / (1 - q)))


def head_cv(data_dir: Path, folds_dir: Path, *, max_chips: int | None = None, seed: int = 0,
            threshold_rule: str = "f1_bootstrap") -> dict[str, Any]:
    """Pooled and per-fold metrics of the CNN alone, the LightGBM alone and the logistic head, on both label sets."""
    import lightgbm as lgb
    from sklearn.linear_model import LogisticRegression

    from amberwatch_training.vhr.train import _subset
    from amberwatch_training.vhr.train_effnet import audited_labels

    chips = _subset(load_chipset(Path(data_dir)), max_chips, seed)
    y = chips.labels
    label_sets = {"original": y, "audited": audited_labels(chips)[0]}
    x = compute_features(chips.paths, n_jobs=1, progress=False)
    kinds = ("cnn", "gbm", "head")
    score = {k: np.full(len(y), np.nan) for k in kinds}
    decision = {k: np.zeros(len(y)) for k in kinds}
    folds = sorted(Path(folds_dir).glob("fold*.npz"))
    if not folds:
        raise FileNotFoundError(f"no fold*.npz in {folds_dir}: run train_effnet with --save-folds first")
    coefs = []
    for path in folds:
        f = np.load(path)
        te, va = f["test"], f["val"]
        fit = np.setdiff1d(np.setdiff1d(np.arange(len(y)), te), va)
        gbm = lgb.LGBMClassifier(n_estimators=400, num_leaves=15, learning_rate=0.05, is_unbalance=True, n_jobs=1,
                                 random_state=seed, verbose=-1).fit(x[fit], y[fit])
        g_val, g_test = gbm.predict_proba(x[va])[:, 1], gbm.predict_proba(x[te])[:, 1]
        head = LogisticRegression(C=1.0).fit(np.c_[_logit(f["p_val"]), _logit(g_val)], y[va])
        coefs.append([round(float(c), 3) for c in [*head.coef_[0], head.intercept_[0]]])
        parts = {"cnn": (f["p_val"], f["p_test"]), "gbm": (g_val, g_test),
                 "head": (head.predict_proba(np.c_[_logit(f["p_val"]), _logit(g_val)])[:, 1],
                          head.predict_proba(np.c_[_logit(f["p_test"]), _logit(g_test)])[:, 1])}
        for k, (p_val, p_test) in parts.items():
            thr = choose_threshold(y[va], p_val, threshold_rule)
            score[k][te] = p_test
            decision[k][te] = p_test >= thr
    if np.isnan(score["cnn"]).any():
        raise ValueError(f"the folds in {folds_dir} do not cover every chip of {data_dir}")
    out: dict[str, Any] = {"folds": len(folds), "threshold_rule": threshold_rule,
                           "head_coefficients_cnn_gbm_intercept": coefs}
    for k in kinds:
        out[k] = {}
        for name, ys in label_sets.items():
            out[k][name] = pooled_metrics(ys, decision[k], score[k])
    return out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--folds", type=Path, required=True, help="the --save-folds folder of a train_effnet CV")
    ap.add_argument("--threshold-rule", choices=("f1", "f1_bootstrap"), default="f1_bootstrap")
    a = ap.parse_args(argv)
    print(json.dumps(head_cv(a.data, a.folds, threshold_rule=a.threshold_rule), indent=2))


if __name__ == "__main__":
    main()
