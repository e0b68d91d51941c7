"""Per-pixel (reference, target) training pairs: the real scene as reference, simulated changes in the target.

A sample is one pixel of a real scene (Sentinel-2 L1C crop or Landsat-8 L1 crop, TOA reflectance, cloud-free
pixels only). Its reference is the real pixel, its target the same pixel after one of:

* 0 stable: unchanged surface (any land cover; vegetation; water; an old sand pit that stays bare);
* 1 vegetation -> bare: a vegetated pixel (NDVI > 0.3) covered at fraction 0.5-1 by dry/wet sand or spoil;
* 2 vegetation -> water: a vegetated pixel covered at fraction 0.6-1 by turbid or dark (humic) water;
* 3 bare -> vegetation: a bare pixel (NDVI < 0.2, no water/snow) or an old sand pit (sand mixed into the
  reference) covered at fraction 0.6-1 by grass / revegetated-ground spectra or a real vegetated pixel.

Materials are the library spectra of ``amberwatch_training.spectra`` (USGS splib07a, ECOSTRESS, Doxaran 2002;
see there) put into TOA with the scene's darkest-object path reflectance. Every target then gets a per-band gain
x0.85-1.15 (season / illumination / calibration) and radiometric noise (2 % multiplicative + 0.003 additive);
the reference gets the noise only. Sensor mismatch: 35 % of Sentinel-2 samples take their reference from the
scene block-averaged to 30 m and bilinearly resampled back to 10 m (a Landsat-like reference), and 30 % of all
samples read the reference one pixel off (co-registration error).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amberwatch.detect.change import CHANGE_BANDS, change_features, spectral_indices

from .. import spectra
from ..scenes import Scene
from ..synth import split_regions, upsample_bilinear

CLASS_SHARES = (0.4, 0.2, 0.2, 0.2)  # stable, veg->bare, veg->water, bare->veg
BARE = ("dry_sand", "wet_sand", "spoil")
WATER = ("turbid_water", "dark_water")
VEGETATION = ("grass", "revegetated")
GAIN = (0.85, 1.15)
DEGRADED_SHARE = 0.35
SHIFT_SHARE = 0.3
VEG_NDVI, BARE_NDVI = 0.3, 0.2


@dataclass
class PairSource:
    """One real scene prepared for sampling: 6-band reference stacks and pixel pools."""

    name: str
    stack: np.ndarray  # [6, H, W] TOA reflectance (CHANGE_BANDS) on the model grid
    degraded: np.ndarray | None  # same, block-averaged to 30 m and resampled back (Sentinel-2 only)
    usable: np.ndarray  # bool [H, W]: valid, cloud-free, 1 px from the border
    veg: np.ndarray
    bare: np.ndarray
    water: np.ndarray
    toa: dict[str, np.ndarray]  # material -> [6] TOA reflectance in this scene
    regions: dict[str, tuple[int, int]]  # split name -> column range


def degrade_to_30m(stack: np.ndarray, k: int = 3) -> np.ndarray:
    """Block-average by ``k`` (a Landsat-like 30 m pixel) and bilinearly resample back to the original grid."""
    c, h, w = stack.shape
    hh, ww = h // k * k, w // k * k
    coarse = stack[:, :hh, :ww].reshape(c, hh // k, k, ww // k, k).mean(axis=(2, 4))
    out = np.empty_like(stack)
    up = np.stack([upsample_bilinear(b, k) for b in coarse])
    out[:, :hh, :ww] = up
    out[:, hh:, :] = stack[:, hh:, :]
    out[:, :, ww:] = stack[:, :, ww:]
    return out


def prepare(scene: Scene) -> PairSource:
    """Stacks, pools and material TOA spectra of a real scene."""
    full = scene.model_stack()
    stack = np.stack([full[list(scene.model_bands).index(b)] for b in CHANGE_BANDS]).astype(np.float32)
    h, w = stack.shape[1:]
    usable = stack.min(axis=0) > 0
    if scene.cloud is not None:
        usable &= ~scene.cloud[:h, :w]
    usable[[0, -1], :] = False
    usable[:, [0, -1]] = False
    idx = spectral_indices(stack.reshape(6, -1)).reshape(6, h, w)
    ndvi, mndwi = idx[0], idx[2]
    water = scene.water[:h, :w] & usable
    veg = usable & (ndvi > VEG_NDVI) & ~water
    bare = usable & (ndvi < BARE_NDVI) & (mndwi < 0.0) & ~water
    paths = spectra.cached_path_reflectance(scene)
    wls = [scene.bands[b].wavelength for b in CHANGE_BANDS]
    toa = {
        m: np.array(
            [spectra.toa(spectra.surface(m, wl), paths[b], wl) for b, wl in zip(CHANGE_BANDS, wls, strict=True)],
            np.float32,
        )
        for m in (*BARE, *WATER, *VEGETATION)
    }
    regions = {k: (r.col0, r.col1) for k, r in split_regions(scene).items()}
    degraded = degrade_to_30m(stack) if scene.family == "sentinel2" else None
    return PairSource(scene.family, stack, degraded, usable, veg, bare, water, toa, regions)


def _pick(rng: np.random.Generator, pool: np.ndarray, cols: tuple[int, int], n: int) -> tuple[np.ndarray, np.ndarray]:
    sub = np.zeros_like(pool)
    sub[:, cols[0] : cols[1]] = pool[:, cols[0] : cols[1]]
    rows, cc = np.nonzero(sub)
    if len(rows) == 0:
        raise ValueError("no candidate pixels for a change class in this region")
    i = rng.integers(0, len(rows), n)
    return rows[i], cc[i]


def _materials(rng: np.random.Generator, src: PairSource, names: tuple[str, ...], n: int) -> np.ndarray:
    """[6, n] TOA spectra of random materials with +-20 % brightness variation."""
    table = np.stack([src.toa[m] for m in names], axis=1)
    return table[:, rng.integers(0, len(names), n)] * rng.uniform(0.8, 1.2, n).astype(np.float32)


def _mix(base: np.ndarray, material: np.ndarray, f: np.ndarray) -> np.ndarray:
    return (1 - f) * base + f * material


def sample_pairs(rng: np.random.Generator, src: PairSource, split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` pixel pairs from one split region -> (features float32 [n, 30], labels uint8 [n])."""
    cols = src.regions[split]
    counts = [int(round(s * n)) for s in CLASS_SHARES]
    counts[0] = n - sum(counts[1:])
    refs, tgts, labels = [], [], []

    def reference(rows: np.ndarray, cc: np.ndarray) -> np.ndarray:
        m = len(rows)
        shift = rng.random(m) < SHIFT_SHARE
        r2 = rows + np.where(shift, rng.integers(-1, 2, m), 0)
        c2 = cc + np.where(shift, rng.integers(-1, 2, m), 0)
        ref = src.stack[:, r2, c2]
        if src.degraded is not None:
            deg = rng.random(m) < DEGRADED_SHARE
            ref = np.where(deg, src.degraded[:, r2, c2], ref)
        return ref

    # 0 stable: 70 % any usable pixel, 10 % vegetation, 10 % water, 10 % old sand pit that stays bare
    n0 = counts[0]
    parts = [int(0.7 * n0), int(0.1 * n0), int(0.1 * n0)]
    parts.append(n0 - sum(parts))
    for pool, m in zip((src.usable, src.veg, src.water if src.water[:, cols[0]:cols[1]].any() else src.usable),
                       parts[:3], strict=True):
        rows, cc = _pick(rng, pool, cols, m)
        refs.append(reference(rows, cc))
        tgts.append(src.stack[:, rows, cc])
    rows, cc = _pick(rng, src.usable, cols, parts[3])
    sand, f = _materials(rng, src, BARE, parts[3]), rng.uniform(0.5, 1.0, parts[3]).astype(np.float32)
    refs.append(_mix(reference(rows, cc), sand, f))
    tgts.append(_mix(src.stack[:, rows, cc], sand, f))
    labels.append(np.zeros(n0, np.uint8))
    # 1 vegetation -> bare, 2 vegetation -> water
    for cls, names, fmin in ((1, BARE, 0.5), (2, WATER, 0.6)):
        m = counts[cls]
        rows, cc = _pick(rng, src.veg, cols, m)
        refs.append(reference(rows, cc))
        f = rng.uniform(fmin, 1.0, m).astype(np.float32)
        tgts.append(_mix(src.stack[:, rows, cc], _materials(rng, src, names, m), f))
        labels.append(np.full(m, cls, np.uint8))
    # 3 bare -> vegetation: 60 % real bare pixels, 40 % old sand pits; regrowth by library spectra or real vegetation
    m = counts[3]
    m_real = int(0.6 * m)
    rows, cc = _pick(rng, src.bare, cols, m_real)
    ref_real, base_real = reference(rows, cc), src.stack[:, rows, cc]
    rows, cc = _pick(rng, src.usable, cols, m - m_real)
    sand, f = _materials(rng, src, BARE, m - m_real), rng.uniform(0.6, 1.0, m - m_real).astype(np.float32)
    ref = np.concatenate([ref_real, _mix(reference(rows, cc), sand, f)], axis=1)
    base = np.concatenate([base_real, _mix(src.stack[:, rows, cc], sand, f)], axis=1)
    veg = _materials(rng, src, VEGETATION, m)
    vr, vc = _pick(rng, src.veg, cols, m)
    veg = np.where(rng.random(m) < 0.5, veg, src.stack[:, vr, vc])
    refs.append(ref)
    tgts.append(_mix(base, veg, rng.uniform(0.6, 1.0, m).astype(np.float32)))
    labels.append(np.full(m, 3, np.uint8))

    ref = np.concatenate(refs, axis=1)
    tgt = np.concatenate(tgts, axis=1)
    k = ref.shape[1]
    tgt = tgt * rng.uniform(*GAIN, (6, k)).astype(np.float32)
    ref = ref * (1 + rng.normal(0, 0.02, ref.shape)) + rng.normal(0, 0.003, ref.shape)
    tgt = tgt * (1 + rng.normal(0, 0.02, tgt.shape)) + rng.normal(0, 0.003, tgt.shape)
    ref, tgt = np.clip(ref, 5e-4, 1.5), np.clip(tgt, 5e-4, 1.5)
    return change_features(ref, tgt), np.concatenate(labels)


def build(rng: np.random.Generator, sources: list[PairSource], split: str, n: int) -> tuple[np.ndarray, np.ndarray]:
    """``n`` samples shared equally between the scenes, shuffled."""
    xs, ys = [], []
    for i, src in enumerate(sources):
        m = n // len(sources) + (1 if i < n % len(sources) else 0)
        x, y = sample_pairs(rng, src, split, m)
        xs.append(x)
        ys.append(y)
    x, y = np.concatenate(xs), np.concatenate(ys)
    order = rng.permutation(len(y))
    return x[order], y[order]
