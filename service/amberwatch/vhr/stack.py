"""The ensemble head of ``vhr-texty`` 2.2.0 as a cascade: the CNN decides alone outside a probability band; inside
it, a logistic head on [CNN logit, LightGBM-on-hand-features logit] decides.

Scores are re-centred so one threshold (0.5) serves both stages: outside the band the score is the CNN probability
shifted in logit space so that the CNN's own threshold maps to 0.5; inside the band it is the head's probability
shifted so that the head's threshold maps to 0.5 (a monotone transform of each stage's probability: the decisions
are exactly each stage's own).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

EPS = 1e-6


def logit(p: np.ndarray | float) -> np.ndarray:
    """log(p / (1 - p)) with p clipped to [1e-6, 1 - 1e-6]."""
    q = np.clip(np.asarray(p, dtype=np.float64), EPS, 1 - EPS)
    return np.asarray(np.log(q / (1 - q)))


def sigmoid(z: np.ndarray) -> np.ndarray:
    return np.asarray(1.0 / (1.0 + np.exp(-np.asarray(z, dtype=np.float64))))


@dataclass(frozen=True)
class StackHead:
    """Logistic head ``sigmoid(coef_cnn * logit(p_cnn) + coef_gbm * logit(p_gbm) + intercept)`` with its own
    ``threshold``; the CNN's ``cnn_threshold``; the CNN-probability band [``band_lo``, ``band_hi``] where the head
    decides."""

    coef_cnn: float
    coef_gbm: float
    intercept: float
    threshold: float
    cnn_threshold: float
    band_lo: float
    band_hi: float

    def head_probability(self, p_cnn: np.ndarray, p_gbm: np.ndarray) -> np.ndarray:
        return sigmoid(self.coef_cnn * logit(p_cnn) + self.coef_gbm * logit(p_gbm) + self.intercept)

    def in_band(self, p_cnn: np.ndarray) -> np.ndarray:
        """Chips whose CNN probability lies in the band: only these need the hand-made features."""
        p = np.asarray(p_cnn, dtype=np.float64)
        return np.asarray((p >= self.band_lo) & (p <= self.band_hi))

    def scores(self, p_cnn: np.ndarray, p_gbm: np.ndarray) -> np.ndarray:
        """Re-centred cascade scores (positive at >= 0.5). ``p_gbm`` is only read inside the band (NaN elsewhere
        is fine)."""
        p_cnn = np.asarray(p_cnn, dtype=np.float64)
        band = self.in_band(p_cnn)
        out = sigmoid(logit(p_cnn) - logit(self.cnn_threshold))
        if band.any():
            head = self.head_probability(p_cnn[band], np.asarray(p_gbm, dtype=np.float64)[band])
            out[band] = sigmoid(logit(head) - logit(self.threshold))
        return out

    def to_properties(self) -> dict[str, Any]:
        return {"coef_cnn_logit": self.coef_cnn, "coef_gbm_logit": self.coef_gbm, "intercept": self.intercept,
                "threshold": self.threshold, "cnn_threshold": self.cnn_threshold,
                "band": [self.band_lo, self.band_hi]}

    @classmethod
    def from_properties(cls, d: dict[str, Any]) -> StackHead:
        """From the card's ``amberwatch:stack`` object; KeyError/TypeError/ValueError on a malformed one."""
        lo, hi = (float(v) for v in d["band"])
        head = cls(float(d["coef_cnn_logit"]), float(d["coef_gbm_logit"]), float(d["intercept"]),
                   float(d["threshold"]), float(d["cnn_threshold"]), lo, hi)
        if not (0 < head.threshold < 1 and 0 < head.cnn_threshold < 1 and 0 <= lo <= hi <= 1):
            raise ValueError("thresholds must lie in (0, 1) and the band in [0, 1] with lo <= hi")
        return head
