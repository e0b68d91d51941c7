"""SLIC superpixels of one tile and their bounding-box crops (how Texty cut its chips)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage as ndi
from skimage.segmentation import slic

N_SEGMENTS = 25  # Texty's chips are numbered super_0..super_24 on ~1000x975 px tiles
COMPACTNESS = 20.0  # with 25 segments: 23-25 superpixels of ~230 px, like the chips
SIGMA = 1.0
TILE_PX = 1000  # Texty's tile side at 0.37 m/px (~370 m)


@dataclass
class Superpixel:
    """One superpixel: its label in the tile's label image, bounding box (row0, col0, row1, col1) and crop."""

    label: int
    bbox: tuple[int, int, int, int]
    crop: np.ndarray  # uint8 (h, w, 3): the bounding box, like a Texty chip
    valid_fraction: float  # share of the superpixel's pixels with data


def segment(rgb: np.ndarray, n_segments: int = N_SEGMENTS, compactness: float = COMPACTNESS, sigma: float = SIGMA,
            mask: np.ndarray | None = None) -> np.ndarray:
    """SLIC labels (int32, 1..n; 0 outside ``mask``) for a uint8 RGB tile."""
    labels = slic(rgb[..., :3], n_segments=max(1, n_segments), compactness=compactness, sigma=sigma, start_label=1,
                  mask=mask, channel_axis=-1)
    return labels.astype(np.int32)


def superpixel_crops(rgb: np.ndarray, labels: np.ndarray, valid: np.ndarray | None = None,
                     min_side: int = 16) -> list[Superpixel]:
    """Bounding-box crops of every superpixel (labels >= 1); boxes smaller than ``min_side`` a side are skipped."""
    out: list[Superpixel] = []
    n = int(labels.max())
    if n == 0:
        return out
    counts = np.bincount(labels.ravel(), minlength=n + 1)
    valid_counts = np.bincount(labels.ravel(), weights=valid.ravel().astype(np.float64), minlength=n + 1) \
        if valid is not None else counts.astype(np.float64)
    for lab, sl in enumerate(ndi.find_objects(labels), start=1):
        if sl is None:
            continue
        r0, r1, c0, c1 = sl[0].start, sl[0].stop, sl[1].start, sl[1].stop
        if r1 - r0 < min_side or c1 - c0 < min_side:
            continue
        out.append(Superpixel(lab, (r0, c0, r1, c1), np.ascontiguousarray(rgb[r0:r1, c0:c1, :3]),
                              float(valid_counts[lab] / max(1, counts[lab]))))
    return out


def tile_superpixels(rgb: np.ndarray, n_segments: int = N_SEGMENTS, compactness: float = COMPACTNESS,
                     valid: np.ndarray | None = None) -> tuple[np.ndarray, list[Superpixel]]:
    """Segment one tile and crop its superpixels; ``n_segments`` is scaled down for partial (edge) tiles."""
    area_share = rgb.shape[0] * rgb.shape[1] / float(TILE_PX * TILE_PX)
    n = max(1, round(n_segments * min(1.0, area_share)))
    labels = segment(rgb, n, compactness, mask=valid if valid is not None and not valid.all() else None)
    return labels, superpixel_crops(rgb, labels, valid)
