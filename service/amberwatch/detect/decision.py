"""The decision rule that turns pit/pond probabilities into detected objects.

One rule, shared by the service (``vectorize``) and by model evaluation (``amberwatch_training.evaluate``):

1. a pixel is *mining* when P(pit) + P(pond) >= ``pixel_threshold``; its class is the larger of the two;
2. an *object* is an 8-connected group of mining pixels (a pit and the pond inside it are one object);
3. an object is kept when the mean mining probability over its pixels is >= ``min_object_confidence``;
   that mean is the confidence reported for every polygon of the object.

The two numbers belong to a model: they are chosen on the model's validation region (never its test region)
and stored in the model card as ``amberwatch:decision``. Cards without it get the plain rule (0.5, 0.0).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy import ndimage

from amberwatch.errors import InputError

EIGHT = np.ones((3, 3), bool)
CARD_KEY = "amberwatch:decision"


@dataclass(frozen=True)
class DecisionRule:
    """Pixel threshold on P(pit) + P(pond) and the minimum mean probability of a kept object."""

    pixel_threshold: float = 0.5
    min_object_confidence: float = 0.0

    def __post_init__(self) -> None:
        if not 0.0 < self.pixel_threshold <= 1.0:
            raise InputError(f"pixel threshold must be in (0, 1], got {self.pixel_threshold}")
        if not 0.0 <= self.min_object_confidence <= 1.0:
            raise InputError(f"minimum object confidence must be in [0, 1], got {self.min_object_confidence}")

    @classmethod
    def from_card(cls, properties: dict[str, Any]) -> DecisionRule:
        """The rule stored in a model card's properties (``amberwatch:decision``), else the default rule."""
        d = properties.get(CARD_KEY) or {}
        return cls(float(d.get("pixel_threshold", 0.5)), float(d.get("min_object_confidence", 0.0)))

    def as_dict(self) -> dict[str, float]:
        """``{"pixel_threshold": .., "min_object_confidence": ..}``; ``DecisionRule(**d)`` reads it back."""
        return {"pixel_threshold": self.pixel_threshold, "min_object_confidence": self.min_object_confidence}

    def as_card(self, chosen_on: str) -> dict[str, Any]:
        return self.as_dict() | {"chosen_on": chosen_on, "rule": "mining = P(pit)+P(pond) >= pixel_threshold; "
                                 "objects = 8-connected mining pixels; kept when their mean P(pit)+P(pond) >= "
                                 "min_object_confidence"}


def pixel_classes(probs: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """uint8 [2, h, w] pit/pond probabilities (x255) -> (class 0/1/2, mining probability x255 as float32)."""
    mining = probs[0].astype(np.float32) + probs[1].astype(np.float32)
    cls = np.where(mining >= threshold * 255.0, np.where(probs[1] > probs[0], 2, 1), 0).astype(np.uint8)
    return cls, mining


def object_class_map(probs: np.ndarray, rule: DecisionRule) -> np.ndarray:
    """The rule on a whole in-memory raster: uint8 [2, h, w] (x255) -> class map 0/1/2 of the kept objects.

    The reference implementation: ``vectorize`` applies the same rule block by block, and evaluation uses this.
    """
    cls, mining = pixel_classes(probs, rule.pixel_threshold)
    objects, n = ndimage.label(cls > 0, structure=EIGHT)
    if n == 0:
        return cls
    sums = np.bincount(objects.ravel(), weights=mining.ravel(), minlength=n + 1)
    counts = np.bincount(objects.ravel(), minlength=n + 1)
    keep = sums >= rule.min_object_confidence * 255.0 * counts
    keep[0] = False
    return np.where(keep[objects], cls, 0).astype(np.uint8)
