"""Training chips from validated labels (``amberwatch labels export --out labels.gpkg``) on real scenes.

Positives are the ``labels`` layer (confirmed mining, ``class`` pit/pond), negatives the ``rejected`` layer (settled
as not mining, ``class`` background: a chip around each with label 0 everywhere). Both are cut with
``chips_from_polygons`` from every scene GeoTIFF that a polygon overlaps, then read in the model's band order as
reflectance on the model grid, the same arrays as ``dataset.chip_bank`` returns. Docs: docs/models.md
"Fine-tuning on real labels".
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import rasterio.errors
from rasterio.crs import CRS

from amberwatch.errors import InputError
from amberwatch.ingest.bands import LANDSAT_OLI_ID_TO_NAME, S2_ID_TO_NAME
from amberwatch.types import REFLECTANCE_SCALE

from .chips import NoPolygonsError, chips_from_polygons
from .dataset import CHIP_SIZE
from .scenes import MODEL_BANDS

POSITIVES, NEGATIVES = "labels", "rejected"  # the layers of amberwatch labels export
GRID_M = {"sentinel2": 10.0, "landsat": 30.0}


@dataclass
class LabelChips:
    """Chips of real labels: ``x`` [N, C, size, size] float32 reflectance, ``y`` [N, size, size] uint8."""

    x: np.ndarray
    y: np.ndarray
    positives: int = 0
    negatives: int = 0
    dropped_negatives: int = 0  # negative chips overlapping a positive chip of the same scene
    scenes: dict[str, dict[str, int]] = field(default_factory=dict)


def scene_files(paths: list[Path], family: str) -> list[Path]:
    """The GeoTIFFs given: files as they are; folders (and their sub-folders, e.g. ``$AMBERWATCH_DATA_DIR/scenes``)
    by their ``*.tif`` files that have the model's bands (cloud masks and other rasters are passed over)."""
    out: list[Path] = []
    for p in paths:
        if p.is_dir():
            found = sorted(f for f in p.rglob("*") if f.suffix.lower() in (".tif", ".tiff") and f.is_file()
                           and _has_bands(f, family))
            if not found:
                raise InputError(f"{p.name}: no scene GeoTIFF (*.tif) with the {family} model's bands in this folder")
            out += found
        elif p.is_file():
            out.append(p)
        else:
            raise InputError(f"{p.name}: no such scene file or folder")
    return out


def _band_names(src: rasterio.DatasetReader) -> list[str]:
    names = {**S2_ID_TO_NAME, **LANDSAT_OLI_ID_TO_NAME}
    return [names.get((d or "").strip(), (d or "").strip().lower()) for d in src.descriptions]


def _has_bands(tif: Path, family: str) -> bool:
    try:
        with rasterio.open(tif) as src:
            names = _band_names(src)
    except rasterio.errors.RasterioError:
        return False
    return all(b in names for b in MODEL_BANDS[family])


def _check_scene(tif: Path, family: str) -> None:
    with rasterio.open(tif) as src:
        crs = CRS.from_user_input(src.crs) if src.crs else None
        if crs is None or not crs.is_projected:
            raise InputError(f"{tif.name}: a scene in a projected CRS (metres, e.g. UTM) is needed for chips")
        res = abs(src.transform.a)
        if abs(res - GRID_M[family]) > 0.05 * GRID_M[family]:
            raise InputError(f"{tif.name}: {res:g} m pixels; {family} models are trained on a {GRID_M[family]:g} m "
                             "grid")
        missing = [b for b in MODEL_BANDS[family] if b not in _band_names(src)]
        if missing:
            raise InputError(f"{tif.name}: lacks the bands {missing} the {family} model needs "
                             f"(band descriptions {list(src.descriptions)})")


def read_chip(path: Path, family: str) -> np.ndarray:
    """A chip in the model's band order as reflectance [C, H, W] (stored integers times their scale)."""
    with rasterio.open(path) as src:
        names = _band_names(src)
        idx = [names.index(b) + 1 for b in MODEL_BANDS[family]]
        data = src.read(idx).astype(np.float32)
        if np.issubdtype(np.dtype(src.dtypes[0]), np.integer):
            scales = [src.scales[i - 1] for i in idx]
            scale = np.array([s if s not in (None, 1.0) else REFLECTANCE_SCALE for s in scales], np.float32)
            data *= scale[:, None, None]
    return data


def _layers(labels: Path) -> set[str]:
    if not labels.is_file():
        raise InputError(f"{labels.name}: no such labels file (make it with amberwatch labels export)")
    try:
        return {str(name) for name, _ in pyogrio.list_layers(labels)}
    except Exception as err:  # noqa: BLE001 - any OGR problem: not a labels file
        raise InputError(f"{labels.name}: not a readable GeoPackage of labels ({type(err).__name__})") from None


def _overlaps(a: dict, b: dict, size: int) -> bool:
    return abs(a["row"] - b["row"]) < size and abs(a["col"] - b["col"]) < size


def label_chip_bank(labels: Path, scenes: list[Path], family: str, size: int | None = None) -> LabelChips:
    """Chips around the confirmed (positives) and rejected (negatives) polygons of ``labels`` on ``scenes``."""
    if family not in MODEL_BANDS:
        raise InputError(f"unknown family {family!r}: expected one of {sorted(MODEL_BANDS)}")
    size = size or CHIP_SIZE[family]
    layers = _layers(labels)
    if POSITIVES not in layers:
        raise InputError(f"{labels.name}: no layer {POSITIVES!r} (expected the output of amberwatch labels export)")
    tifs = scene_files(scenes, family)
    for tif in tifs:
        _check_scene(tif, family)
    xs, ys = [], []
    out = LabelChips(np.zeros((0, len(MODEL_BANDS[family]), size, size), np.float32), np.zeros((0, size, size),
                                                                                           np.uint8))
    with tempfile.TemporaryDirectory(prefix="label-chips-") as tmp:
        for n, tif in enumerate(tifs):
            index: dict[str, list[dict]] = {}
            for layer in (POSITIVES, NEGATIVES):
                if layer not in layers:
                    continue
                folder = Path(tmp) / f"{n}-{layer}"
                try:
                    chips_from_polygons(tif, labels, folder, size=size, layer=layer)
                except NoPolygonsError:
                    index[layer] = []  # this scene shows none of this layer's polygons
                    continue
                index[layer] = json.loads((folder / "chips.json").read_text())["chips"]
                for c in index[layer]:
                    c["folder"] = folder
            positives = index.get(POSITIVES, [])
            negatives = [c for c in index.get(NEGATIVES, []) if not any(_overlaps(c, p, size) for p in positives)]
            out.dropped_negatives += len(index.get(NEGATIVES, [])) - len(negatives)
            for c in positives + negatives:
                xs.append(read_chip(c["folder"] / c["image"], family))
                with rasterio.open(c["folder"] / c["label"]) as src:
                    ys.append(src.read(1).astype(np.uint8))
            out.positives += len(positives)
            out.negatives += len(negatives)
            out.scenes[tif.name] = {"positives": len(positives), "negatives": len(negatives)}
    if not xs:
        raise InputError(f"none of the labelled polygons of {labels.name} lies on the scenes given "
                         f"({', '.join(t.name for t in tifs)})")
    out.x, out.y = np.stack(xs).astype(np.float32), np.stack(ys)
    return out
