"""Failure-case PNGs: RGB | truth | prediction crops around missed sites and false objects (Pillow only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw
from scipy import ndimage

from .synth import Rendered

COLORS = np.array([[0, 0, 0], [255, 215, 0], [30, 144, 255]], np.uint8)  # background, pit, pond


def rgb(stack: np.ndarray, bands: list[str]) -> np.ndarray:
    """Contrast-stretched true colour, uint8 [H, W, 3]."""
    img = np.stack([stack[bands.index(b)] for b in ("red", "green", "blue")], -1)
    lo, hi = np.percentile(img, 1), np.percentile(img, 99.5)
    return (np.clip((img - lo) / max(1e-6, hi - lo), 0, 1) * 255).astype(np.uint8)


def _panel(r: Rendered, pred: np.ndarray, cy: int, cx: int, half: int, title: str, scale: int = 4) -> Image.Image:
    h, w = pred.shape
    y0, x0 = max(0, min(h - 2 * half, cy - half)), max(0, min(w - 2 * half, cx - half))
    sl = (slice(y0, y0 + 2 * half), slice(x0, x0 + 2 * half))
    col = rgb(r.stack, r.bands)[sl]
    truth = COLORS[r.label[sl]].copy()
    truth[(r.negative[sl]) & (r.label[sl] == 0)] = [160, 40, 40]
    truth[(r.cloud[sl]) & (r.label[sl] == 0)] = [110, 110, 110]
    row = np.concatenate([col, truth, COLORS[pred[sl]]], 1)
    im = Image.fromarray(row).resize((row.shape[1] * scale, row.shape[0] * scale), Image.NEAREST)
    canvas = Image.new("RGB", (im.width, im.height + 16), "white")
    canvas.paste(im, (0, 16))
    ImageDraw.Draw(canvas).text((4, 2), title + "   [image | truth (red=confuser, grey=cloud) | prediction]", "black")
    return canvas


def save_case_images(r: Rendered, pred: np.ndarray, out_dir: Path, family: str, n: int = 3) -> list[Path]:
    """Up to ``n`` missed sites and ``n`` false objects of one evaluation rendering, as two PNGs."""
    out_dir.mkdir(parents=True, exist_ok=True)
    half = 24
    missed, false = [], []
    mining = pred > 0
    for sid in np.unique(r.site_ids[r.label > 0]):
        m = r.site_ids == sid
        if not (ndimage.binary_dilation(m, iterations=1) & mining).any():
            missed.append(ndimage.center_of_mass(m))
    comps, k = ndimage.label(mining, structure=np.ones((3, 3)))
    for i in range(1, k + 1):
        c = comps == i
        if c.sum() >= 3 and not (ndimage.binary_dilation(c) & (r.site_ids > 0)).any():
            false.append(ndimage.center_of_mass(c))
    written = []
    for kind, pts in (("missed_sites", missed), ("false_objects", false)):
        if not pts:
            continue
        panels = [_panel(r, pred, int(y), int(x), half, f"{family}: {kind.replace('_', ' ')} #{j + 1}")
                  for j, (y, x) in enumerate(pts[:n])]
        sheet = Image.new("RGB", (panels[0].width, sum(p.height for p in panels)), "white")
        y = 0
        for p in panels:
            sheet.paste(p, (0, y))
            y += p.height
        path = out_dir / f"{family}_{kind}.png"
        sheet.save(path)
        written.append(path)
    return written
