"""The 8 symmetries of a square overhead image (4 rotations x optional mirror): augmentation and test-time averaging.

Overhead imagery has no "up": a pit field rotated by 90 degrees or mirrored is still a pit field, so the classifier
is trained on random dihedral views and scored as the mean over all 8 views.
"""

from __future__ import annotations

import numpy as np

N_VIEWS = 8


def view(x: np.ndarray, k: int) -> np.ndarray:
    """View ``k`` (0..7) of a batch [N, C, H, W]: rotation by ``k % 4`` quarter turns, mirrored when ``k >= 4``."""
    out = np.rot90(x, k % 4, axes=(-2, -1))
    if k >= 4:
        out = out[..., ::-1]
    return np.ascontiguousarray(out)


def all_views(x: np.ndarray) -> np.ndarray:
    """[N, C, S, S] -> [8 * N, C, S, S]: view 0 of every image, then view 1, ... (square images only)."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"dihedral views need square images, got {x.shape[-2]}x{x.shape[-1]}")
    return np.concatenate([view(x, k) for k in range(N_VIEWS)])


def mean_over_views(p: np.ndarray, n: int) -> np.ndarray:
    """Scores of ``all_views`` output ([8 * n] or [8 * n, 1]) -> mean per image [n]."""
    return np.asarray(p, dtype=np.float64).reshape(N_VIEWS, n).mean(axis=0)
