"""Chip metrics and threshold choice."""

from __future__ import annotations

from typing import Any

import numpy as np
from sklearn.metrics import (
    confusion_matrix,
    f1_score,
    precision_recall_curve,
    precision_score,
    recall_score,
    roc_auc_score,
)


def best_f1_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold that maximises F1 on (y, p) (midpoint to the next lower score, for margin)."""
    pr, rc, th = precision_recall_curve(y, p)
    f = 2 * pr[:-1] * rc[:-1] / np.maximum(pr[:-1] + rc[:-1], 1e-12)
    i = int(np.nanargmax(f))
    t = float(th[i])
    lower = p[p < t]
    return float((t + lower.max()) / 2) if lower.size else t


def bootstrap_f1_threshold(y: np.ndarray, p: np.ndarray, n_boot: int = 200, seed: int = 0) -> float:
    """Median over ``n_boot`` bootstrap resamples of (y, p) of :func:`best_f1_threshold`: steadier than the one
    argmax of a jagged F1 curve on a small validation part."""
    rng = np.random.default_rng(seed)
    found = []
    for _ in range(n_boot):
        i = rng.integers(0, len(y), len(y))
        if 0 < y[i].sum() < len(i):
            found.append(best_f1_threshold(y[i], p[i]))
    return float(np.median(found)) if found else best_f1_threshold(y, p)


def choose_threshold(y: np.ndarray, p: np.ndarray, rule: str) -> float:
    """``f1``: the F1-optimal threshold of (y, p); ``f1_bootstrap``: the median of it over bootstrap resamples."""
    if rule == "f1":
        return best_f1_threshold(y, p)
    if rule == "f1_bootstrap":
        return bootstrap_f1_threshold(y, p)
    raise ValueError(f"threshold rule must be f1 or f1_bootstrap, not {rule!r}")


def chip_metrics(y: np.ndarray, p: np.ndarray, threshold: float) -> dict[str, Any]:
    """precision, recall, F1, ROC AUC, confusion matrix [[tn, fp], [fn, tp]] at ``threshold``."""
    pred = (p >= threshold).astype(int)
    cm = confusion_matrix(y, pred, labels=[0, 1])
    return {
        "n": int(len(y)),
        "n_positive": int(y.sum()),
        "threshold": round(float(threshold), 6),
        "precision": round(float(precision_score(y, pred, zero_division=0)), 4),
        "recall": round(float(recall_score(y, pred, zero_division=0)), 4),
        "f1": round(float(f1_score(y, pred, zero_division=0)), 4),
        "roc_auc": round(float(roc_auc_score(y, p)), 4) if 0 < y.sum() < len(y) else None,
        "confusion_matrix": {"tn": int(cm[0, 0]), "fp": int(cm[0, 1]), "fn": int(cm[1, 0]), "tp": int(cm[1, 1])},
    }


def pooled_metrics(y: np.ndarray, decision: np.ndarray, score: np.ndarray) -> dict[str, Any]:
    """:func:`chip_metrics` of 0/1 ``decision``s each made at its own fold's threshold (so no one threshold is
    reported), with the ROC AUC of the out-of-fold ``score``s."""
    row = chip_metrics(y, decision, 0.5)
    row["roc_auc"] = chip_metrics(y, score, 0.5)["roc_auc"]
    row.pop("threshold")
    return row


def summarize(per_fold: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k in ("precision", "recall", "f1", "roc_auc"):
        vals = np.array([f[k] for f in per_fold if f.get(k) is not None], dtype=float)
        if vals.size:
            out[k] = {"mean": round(float(vals.mean()), 4), "std": round(float(vals.std()), 4)}
    return out
