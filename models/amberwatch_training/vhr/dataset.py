"""The Texty chip set: labelled superpixel chips, their tile keys, features, and the by-tile splits."""

from __future__ import annotations

import hashlib
import logging
import os
import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from joblib import Parallel, delayed
from sklearn.model_selection import StratifiedGroupKFold

from amberwatch.vhr.features import FEATURE_VERSION, N_FEATURES, extract_features
from amberwatch.vhr.io import read_rgb

log = logging.getLogger(__name__)

LABEL_DIRS = {"positive": 1, "negative": 0}
CHIP_NAME = re.compile(r"^(?P<tile>.+)_super_(?P<sp>\d+)\.png$", re.IGNORECASE)
TEST_PERCENT = 20  # share of tile groups in the held-out test split (by hash, stratified)
TILE_SIDE_M = 370.0  # a Bing tile: ~1000 px at ~0.37 m


@dataclass
class ChipSet:
    """Chips of one data folder: paths, 0/1 labels, tile keys (``<lat>_<lon>_<date>``)."""

    paths: list[Path]
    labels: np.ndarray
    tiles: np.ndarray

    def __len__(self) -> int:
        return len(self.paths)

    def subset(self, idx: np.ndarray) -> ChipSet:
        return ChipSet([self.paths[i] for i in idx], self.labels[idx], self.tiles[idx])


def tile_key(name: str) -> str:
    """``50.1_28.3_23_May_2015_GMT_super_2.png`` -> ``50.1_28.3_23_May_2015_GMT`` (all chips of one Bing tile)."""
    m = CHIP_NAME.match(name)
    if not m:
        raise ValueError(f"chip name {name!r} does not look like <lat>_<lon>_<date>_super_<id>.png")
    return m.group("tile")


def load_chipset(data_dir: Path) -> ChipSet:
    """List ``positive/*.png`` (label 1) and ``negative/*.png`` (label 0) under ``data_dir``."""
    paths: list[Path] = []
    labels: list[int] = []
    for sub, lab in LABEL_DIRS.items():
        folder = Path(data_dir) / sub
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is missing: expected {data_dir}/positive and {data_dir}/negative")
        for p in sorted(folder.glob("*.png")):
            paths.append(p)
            labels.append(lab)
    if not paths:
        raise FileNotFoundError(f"no *.png chips under {data_dir}/positive or {data_dir}/negative")
    tiles = np.array([tile_key(p.name) for p in paths])
    return ChipSet(paths, np.array(labels, dtype=np.int64), tiles)


def tile_centre(tile: str) -> tuple[float, float]:
    """(lat, lon) of a tile key."""
    lat, lon = tile.split("_")[:2]
    return float(lat), float(lon)


def tile_groups(tiles: np.ndarray, link_m: float = TILE_SIDE_M) -> np.ndarray:
    """Group id per chip: tiles whose centres are closer than ``link_m`` (overlapping footprints) share a group.

    Splitting by these groups keeps every tile - and every pair of overlapping tiles - on one side of a split.
    """
    from scipy.sparse.csgraph import connected_components
    from scipy.spatial import cKDTree

    uniq = sorted(set(tiles.tolist()))
    ll = np.array([tile_centre(t) for t in uniq])
    lat0 = np.deg2rad(ll[:, 0].mean())
    xy = np.column_stack([ll[:, 1] * 111_320 * np.cos(lat0), ll[:, 0] * 110_574])
    pairs = cKDTree(xy).query_pairs(link_m, output_type="ndarray")
    from scipy.sparse import coo_matrix

    n = len(uniq)
    graph = coo_matrix((np.ones(len(pairs)), (pairs[:, 0], pairs[:, 1])), shape=(n, n)) if len(pairs) else \
        coo_matrix((n, n))
    _, comp = connected_components(graph, directed=False)
    names = {}
    for t, c in zip(uniq, comp, strict=True):
        names.setdefault(c, t)  # group name = its first tile key (sorted), stable across runs
    by_tile = {t: names[c] for t, c in zip(uniq, comp, strict=True)}
    return np.array([by_tile[t] for t in tiles.tolist()])


def _hash(key: str) -> int:
    return int(hashlib.sha256(key.encode()).hexdigest()[:12], 16)


def test_mask(chips: ChipSet, groups: np.ndarray | None = None) -> np.ndarray:
    """Held-out test chips: the ``TEST_PERCENT`` % of tile groups with the smallest hash, taken separately among
    groups with and without positive chips (stratified; independent of library versions and file order)."""
    groups = tile_groups(chips.tiles) if groups is None else groups
    chosen: set[str] = set()
    for has_pos in (True, False):
        gs = sorted({g for g in set(groups.tolist()) if bool(chips.labels[groups == g].any()) == has_pos}, key=_hash)
        chosen.update(gs[: round(len(gs) * TEST_PERCENT / 100)])
    return np.array([g in chosen for g in groups.tolist()])


def tiles_digest(tiles: np.ndarray) -> str:
    """sha256 of the sorted unique tile keys: lets a test confirm it evaluates on exactly the same tiles."""
    return hashlib.sha256("\n".join(sorted(set(tiles.tolist()))).encode()).hexdigest()


def group_folds(labels: np.ndarray, groups: np.ndarray, n_splits: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    """Stratified k-fold where all chips of a tile stay in one fold."""
    cv = StratifiedGroupKFold(n_splits=n_splits, shuffle=True, random_state=seed)
    return list(cv.split(np.zeros(len(labels)), labels, groups))


def _features_of(path: Path) -> np.ndarray:
    return extract_features(read_rgb(path))


def _cache_dir() -> Path:
    return Path(os.environ.get("AMBERWATCH_CACHE", Path.home() / ".cache" / "amberwatch")) / "vhr-features"


def compute_features(paths: list[Path], n_jobs: int = -1, progress: bool = True, cache: bool = True) -> np.ndarray:
    """Feature matrix [n_chips, N_FEATURES], cached per file content (outside the repository)."""
    out = np.zeros((len(paths), N_FEATURES), dtype=np.float32)
    todo: list[int] = []
    keys: list[Path] = []
    cdir = _cache_dir()
    for i, p in enumerate(paths):
        h = hashlib.sha1(p.read_bytes()).hexdigest()
        key = cdir / f"v{FEATURE_VERSION}-{N_FEATURES}-{h}.npy"
        keys.append(key)
        if cache and key.exists():
            out[i] = np.load(key)
        else:
            todo.append(i)
    if todo:
        log.info("computing features for %d chips (%d cached)", len(todo), len(paths) - len(todo))
        iterator = [paths[i] for i in todo]
        if progress:
            from tqdm import tqdm

            iterator = tqdm(iterator, desc="features", unit="chip")
        rows = Parallel(n_jobs=n_jobs)(delayed(_features_of)(p) for p in iterator)
        if cache:
            cdir.mkdir(parents=True, exist_ok=True)
        for i, row in zip(todo, rows, strict=True):
            out[i] = row
            if cache:
                np.save(keys[i], row)
    return out
