"""Training/validation chip banks: random windows of one spatial region with simulated sites and confusers."""

from __future__ import annotations

import hashlib
import os
from multiprocessing import get_context
from pathlib import Path

import numpy as np

from . import synth
from .scenes import Scene, load_scene

CHIP_SIZE = {"sentinel2": 72, "landsat": 48}
CACHE_DIR = Path(os.environ.get("AMBERWATCH_CHIP_CACHE", Path.home() / ".cache" / "amberwatch_training"))
_SCENE: Scene | None = None


def _init(family: str) -> None:
    global _SCENE
    _SCENE = load_scene(family)


# negative mixes: "uniform" (s2-unet 1.0.0, landsat-unet 1.0.0) draws 0-5 confusers of all kinds alike;
# "confuser-boost" draws 0-7 and beaches / sand roads (the commonest false alarms of 1.0.0) three / two times as often
NEGATIVE_MIXES: dict[str, tuple[int, tuple[str, ...]]] = {
    "uniform": (6, synth.NEGATIVE_KINDS),
    "confuser-boost": (8, synth.NEGATIVE_KINDS + ("beach", "beach", "sand_road")),
}


def make_chip(scene: Scene, region: synth.Region, size: int, seed: int,
              negatives: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """One chip: (reflectance [C, size, size], label [size, size]); deterministic for a seed."""
    rng = np.random.default_rng(seed)
    k = synth.coarse_factor(scene)
    c_hi = (region.col1 - size) // k
    r_hi = (scene.shape[0] - size) // k
    window = (int(rng.integers(0, r_hi + 1)) * k, int(rng.integers(region.col0 // k, c_hi + 1)) * k, size, size)
    n_sites = int(rng.choice([0, 1, 2, 2, 3, 3, 4]))
    hi, kinds = NEGATIVE_MIXES[negatives]
    n_neg = int(rng.integers(0, hi))
    feats = synth.populate(rng, scene, window, n_sites, n_neg, negative_kinds=kinds)
    clouds = synth.make_clouds(rng, (size, size), scene.res) if rng.random() < 0.3 else None
    r = synth.render(scene, window, feats, clouds)
    return r.stack, r.label


def _chip_job(args: tuple[str, int, int, str]) -> tuple[np.ndarray, np.ndarray]:
    region_name, size, seed, negatives = args
    assert _SCENE is not None
    region = synth.split_regions(_SCENE)[region_name]
    return make_chip(_SCENE, region, size, seed, negatives)


def _code_hash() -> str:
    """Hash of the generator sources: cached chip banks are reused only for identical generator code."""
    h = hashlib.sha256()
    for name in ("synth.py", "spectra.py", "scenes.py", "dataset.py"):
        h.update((Path(__file__).parent / name).read_bytes())
    return h.hexdigest()[:12]


def chip_bank(family: str, region: str, n: int, seed: int, size: int | None = None, workers: int = 2,
              progress: bool = False, cache_dir: Path | None = CACHE_DIR,
              negatives: str = "uniform") -> tuple[np.ndarray, np.ndarray]:
    """``n`` chips of a region as arrays X [n, C, S, S] float32 and Y [n, S, S] uint8 (parallel, deterministic).

    Banks are cached as .npz under ``cache_dir`` (env AMBERWATCH_CHIP_CACHE; None disables) keyed by the
    arguments and a hash of the generator code.
    """
    size = size or CHIP_SIZE[family]
    cache = None
    if cache_dir is not None:
        cache = Path(cache_dir) / f"{family}_{region}_{n}_{seed}_{size}_{negatives}_{_code_hash()}.npz"
        if cache.exists():
            with np.load(cache) as z:
                return z["x"], z["y"]
    if negatives not in NEGATIVE_MIXES:
        raise ValueError(f"unknown negative mix {negatives!r}: expected one of {sorted(NEGATIVE_MIXES)}")
    jobs = [(region, size, seed * 1_000_003 + i * 7919 + {"train": 0, "val": 1, "test": 2}[region], negatives)
            for i in range(n)]
    if workers > 1:
        with get_context("fork").Pool(workers, initializer=_init, initargs=(family,)) as pool:
            it = pool.imap(_chip_job, jobs, chunksize=8)
            results = list(_progress(it, n, f"chips {region}", progress))
    else:
        _init(family)
        results = [_chip_job(j) for j in _progress(jobs, n, f"chips {region}", progress)]
    x = np.stack([r[0] for r in results]).astype(np.float32)
    y = np.stack([r[1] for r in results]).astype(np.uint8)
    if cache is not None:
        cache.parent.mkdir(parents=True, exist_ok=True)
        tmp = cache.with_suffix(".tmp.npz")
        np.savez(tmp, x=x, y=y)
        tmp.replace(cache)
    return x, y


def _progress(it, total: int, desc: str, show: bool):  # type: ignore[no-untyped-def]
    if not show:
        return it
    from tqdm import tqdm

    return tqdm(it, total=total, desc=desc, leave=False)
