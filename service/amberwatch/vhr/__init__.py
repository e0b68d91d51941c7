"""Very-high-resolution RGB classifier (Texty's superpixel method): chip scoring and scene detection."""

from __future__ import annotations

from amberwatch.vhr.chips import ChipScore, score_chips
from amberwatch.vhr.detect import detect_vhr
from amberwatch.vhr.model import VhrModel, load_vhr_model, score_image

__all__ = ["ChipScore", "VhrModel", "detect_vhr", "load_vhr_model", "score_chips", "score_image"]
