"""Chip preprocessing shared by training and inference."""

from __future__ import annotations

import numpy as np
from skimage.transform import resize

CHIP_GSD = 0.37  # metres per pixel of Texty's Bing chips and tiles
CNN_GSD = 0.74  # the CNN sees chips downscaled 2x
CNN_MIN_SIDE = 32


def cnn_input(rgb: np.ndarray, gsd: float = CHIP_GSD, target_gsd: float = CNN_GSD) -> np.ndarray:
    """uint8 (H, W, 3) at ``gsd`` m/px -> uint8 [3, h, w] at ``target_gsd`` (anti-aliased; >= 32 px a side)."""
    a = np.asarray(rgb)[..., :3]
    scale = gsd / target_gsd
    h = max(CNN_MIN_SIDE, round(a.shape[0] * scale))
    w = max(CNN_MIN_SIDE, round(a.shape[1] * scale))
    if (h, w) != a.shape[:2]:
        a = resize(a, (h, w), order=1, anti_aliasing=scale < 1, preserve_range=True)
    return np.ascontiguousarray(np.clip(np.rint(a), 0, 255).astype(np.uint8).transpose(2, 0, 1))


def square_input(rgb: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, 3) chip or superpixel box -> uint8 [3, size, size] (anti-aliased bilinear resize).

    The fine-tuned EfficientNet sees every chip (Texty's superpixel bounding box, ~206-274 px at 0.37 m) squeezed
    to one square size, at training and at inference alike.
    """
    a = np.asarray(rgb)[..., :3]
    if a.shape[:2] != (size, size):
        a = resize(a, (size, size), order=1, anti_aliasing=max(a.shape[:2]) > size, preserve_range=True)
    return np.ascontiguousarray(np.clip(np.rint(a), 0, 255).astype(np.uint8).transpose(2, 0, 1))
