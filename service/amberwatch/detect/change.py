"""Bi-temporal change detection: a per-pixel Random-Forest (ONNX) on a reference and a target scene.

Classes: 0 stable, 1 vegetation -> bare, 2 vegetation -> water, 3 bare -> vegetation; 255 = nodata / cloud in
either scene. The output COG is on the TARGET grid; the reference is warped onto it (bilinear) window by window.

Entry points: :func:`detect_change`, :func:`change_summary`, :func:`load_change_model`, :func:`change_features`.
"""

from __future__ import annotations

import json
import logging
import math
import tempfile
from contextlib import ExitStack
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import rasterio
import shapely
from pyproj import Transformer
from rasterio.enums import Resampling
from rasterio.features import geometry_mask
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window, from_bounds

from amberwatch.cog import to_cog
from amberwatch.detect.registry import ModelInfo, card_properties, file_sha256, model_href, version_key
from amberwatch.detect.segment import Progress, open_cloud_mask, scene_band_names
from amberwatch.detect.session import create_session
from amberwatch.errors import AmberWatchError, InputError
from amberwatch.settings import Settings
from amberwatch.types import REFLECTANCE_SCALE, DetectedPolygon, IngestedScene

log = logging.getLogger(__name__)

CHANGE_FAMILY = "change"
DEFAULT_CHANGE_MODEL = "change-rf"
NODATA = 255
CLASS_NAMES: dict[int, str] = {0: "stable", 1: "vegetation_to_bare", 2: "vegetation_to_water", 3: "bare_to_vegetation"}
# bands common to Sentinel-2 and Landsat TM/ETM+/OLI; "nir08" falls back to "nir" when a scene lacks it
CHANGE_BANDS: tuple[str, ...] = ("blue", "green", "red", "nir08", "swir16", "swir22")
INDEX_NAMES: tuple[str, ...] = ("ndvi", "ndwi", "mndwi", "bsi", "nbr", "swir_ratio")
FEATURE_NAMES: tuple[str, ...] = (
    *(f"ref_{b}" for b in CHANGE_BANDS),
    *(f"tgt_{b}" for b in CHANGE_BANDS),
    *(f"ref_{i}" for i in INDEX_NAMES),
    *(f"tgt_{i}" for i in INDEX_NAMES),
    *(f"diff_{i}" for i in INDEX_NAMES),
)
EPS = 1e-6


def _nd(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return (a - b) / (a + b + EPS)


def spectral_indices(x: np.ndarray) -> np.ndarray:
    """[6, N] reflectance in CHANGE_BANDS order -> [6, N] NDVI, NDWI (green/nir), MNDWI (green/swir16), BSI,
    NBR and the swir16/swir22 ratio (clipped to 0..5)."""
    blue, green, red, nir, sw1, sw2 = x
    bsi = _nd(sw1 + red, nir + blue)
    ratio = np.clip(sw1 / (sw2 + EPS), 0.0, 5.0)
    return np.stack([_nd(nir, red), _nd(green, nir), _nd(green, sw1), bsi, _nd(nir, sw2), ratio])


def change_features(reference: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[6, N] reference and target reflectance (0..1, CHANGE_BANDS order) -> float32 [N, 30] model features
    (names and order: FEATURE_NAMES)."""
    ref = np.asarray(reference, np.float32)
    tgt = np.asarray(target, np.float32)
    ri, ti = spectral_indices(ref), spectral_indices(tgt)
    return np.ascontiguousarray(np.concatenate([ref, tgt, ri, ti, ti - ri]).T, dtype=np.float32)


# ------------------------------------------------------------------------------------------------ model loading
def load_change_model(models_dir: Path, name: str | None = None) -> ModelInfo:
    """Resolve ``name`` / ``name@version`` / None (= ``change-rf``, highest version) in the registry.

    The generic registry only lists segmentation families, so change models are read here.
    """
    base, _, version = (name or DEFAULT_CHANGE_MODEL).partition("@")
    root = Path(models_dir) / base
    dirs = sorted((p.parent for p in root.glob("*/mlm.json")), key=lambda p: version_key(p.name))
    if version:
        dirs = [d for d in dirs if d.name.lstrip("vV") == version.lstrip("vV")]
    if not dirs:
        raise InputError(f"No change model {name or DEFAULT_CHANGE_MODEL!r} in {models_dir}")
    vdir = dirs[-1]
    card = json.loads((vdir / "mlm.json").read_text())
    props = card_properties(card)
    if props.get("amberwatch:family") != CHANGE_FAMILY:
        raise InputError(f"Model {base}@{vdir.name} is not a change model (amberwatch:family must be 'change')")
    onnx_path = vdir / model_href(card)
    metrics_path = vdir / "metrics.json"
    return ModelInfo(
        name=str(props.get("mlm:name") or base),
        version=str(props.get("amberwatch:version") or vdir.name),
        family=CHANGE_FAMILY,
        path=vdir,
        onnx_path=onnx_path,
        card=card,
        metrics=json.loads(metrics_path.read_text()) if metrics_path.exists() else {},
        sha256=file_sha256(onnx_path) if onnx_path.exists() else "",
    )


@lru_cache(maxsize=2)
def _session(onnx_path: str, sha256: str, providers: tuple[str, ...] | None) -> tuple[ort.InferenceSession, str]:
    return create_session(Path(onnx_path), list(providers) if providers else None)


def predict_classes(session: ort.InferenceSession, features: np.ndarray) -> np.ndarray:
    """float32 [N, 30] -> uint8 [N] change classes."""
    if len(features) == 0:
        return np.zeros(0, np.uint8)
    label = session.run([session.get_outputs()[0].name], {session.get_inputs()[0].name: features})[0]
    return np.asarray(label).astype(np.uint8).ravel()


# ------------------------------------------------------------------------------------------------ detection
def _indexes(src: rasterio.DatasetReader, scene: IngestedScene, role: str) -> list[int]:
    names = scene_band_names(src.descriptions, scene)
    wanted = [b if b in names or b != "nir08" else "nir" for b in CHANGE_BANDS]
    missing = [b for b in wanted if b not in names]
    if missing:
        raise InputError(
            f"Change detection needs bands {list(CHANGE_BANDS)} (nir08 or nir) but the {role} scene "
            f"{scene.scene_key} lacks {missing} (it has {names})"
        )
    return [names.index(b) + 1 for b in wanted]


def _check_overlap(tgt: rasterio.DatasetReader, ref: rasterio.DatasetReader, target: IngestedScene,
                   reference: IngestedScene) -> None:
    left, bottom, right, top = transform_bounds(ref.crs, tgt.crs, *ref.bounds, densify_pts=21)
    tl, tb, tr, tt = tgt.bounds
    res = min(abs(tgt.res[0]), abs(tgt.res[1]))
    if min(right, tr) - max(left, tl) < res or min(top, tt) - max(bottom, tb) < res:
        raise InputError(
            f"Reference scene {reference.scene_key} does not overlap target scene {target.scene_key} "
            f"(reference bounds in the target CRS {tuple(round(v) for v in (left, bottom, right, top))}, "
            f"target bounds {tuple(round(v) for v in (tl, tb, tr, tt))})"
        )


def detect_change(
    target: IngestedScene,
    reference: IngestedScene,
    model: ModelInfo,
    out_path: Path,
    settings: Settings,
    progress: Progress | None = None,
) -> Path:
    """Classify change between ``reference`` (earlier) and ``target`` (later) into a uint8 COG on the target grid.

    Values: 0 stable, 1 vegetation->bare, 2 vegetation->water, 3 bare->vegetation, 255 nodata (no data or cloud
    in either scene). Memory is bounded by ``settings.window_size``. Raises InputError when the scenes do not
    overlap or lack the bands.
    """
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    if not model.onnx_path.exists():
        raise AmberWatchError(f"Model {model.ref}: {model.onnx_path} is missing from the registry")
    session, provider = _session(
        str(model.onnx_path), model.sha256, tuple(settings.providers) if settings.providers else None
    )
    n_inputs = session.get_inputs()[0].shape[1]
    if isinstance(n_inputs, int) and n_inputs != len(FEATURE_NAMES):
        raise AmberWatchError(f"Model {model.ref} takes {n_inputs} features, this runtime makes {len(FEATURE_NAMES)}")
    with ExitStack() as stack, tempfile.TemporaryDirectory(dir=out_path.parent, prefix=".change-") as tmp_dir:
        tgt = stack.enter_context(rasterio.open(target.reflectance_path))
        ref_src = stack.enter_context(rasterio.open(reference.reflectance_path))
        t_idx = _indexes(tgt, target, "target")
        r_idx = _indexes(ref_src, reference, "reference")
        _check_overlap(tgt, ref_src, target, reference)
        grid = dict(crs=tgt.crs, transform=tgt.transform, width=tgt.width, height=tgt.height)
        ref = stack.enter_context(WarpedVRT(ref_src, resampling=Resampling.bilinear, src_nodata=0, nodata=0, **grid))
        t_cloud = open_cloud_mask(stack, target, tgt)
        r_cloud = None
        if reference.cloud_mask_path is not None:
            r_mask = stack.enter_context(rasterio.open(reference.cloud_mask_path))
            r_cloud = stack.enter_context(WarpedVRT(r_mask, resampling=Resampling.nearest, nodata=1, **grid))
        tmp_path = Path(tmp_dir) / "change.tif"
        profile = dict(driver="GTiff", count=1, dtype="uint8", nodata=NODATA, tiled=True, blockxsize=256,
                       blockysize=256, BIGTIFF="IF_SAFER", **grid)
        size = max(1, settings.window_size)
        windows = [Window(c, r, min(size, tgt.width - c), min(size, tgt.height - r))
                   for r in range(0, tgt.height, size) for c in range(0, tgt.width, size)]
        log.info("change %s vs %s with %s on %s: %dx%d px, %d windows", target.scene_key, reference.scene_key,
                 model.ref, provider, tgt.width, tgt.height, len(windows))
        counts = np.zeros(len(CLASS_NAMES), np.int64)
        with rasterio.open(tmp_path, "w", **profile) as dst:
            for i, win in enumerate(windows):
                t = tgt.read(t_idx, window=win).astype(np.float32) * np.float32(REFLECTANCE_SCALE)
                r = ref.read(r_idx, window=win).astype(np.float32) * np.float32(REFLECTANCE_SCALE)
                valid = t.any(axis=0) & r.any(axis=0)  # GDAL warping skips src nodata (0) pixels
                if t_cloud is not None:
                    valid &= t_cloud.read(1, window=win) == 0
                if r_cloud is not None:
                    valid &= r_cloud.read(1, window=win) == 0
                out = np.full(valid.shape, NODATA, np.uint8)
                if valid.any():
                    out[valid] = predict_classes(session, change_features(r[:, valid], t[:, valid]))
                    counts += np.bincount(out[valid], minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
                dst.write(out, 1, window=win)
                if progress:
                    progress((i + 1) / len(windows), f"change: window {i + 1}/{len(windows)}")
            dst.set_band_description(1, "change_class")
            dst.update_tags(
                target=target.scene_key, reference=reference.scene_key, model=model.name,
                model_version=model.version, classes=",".join(f"{k}={v}" for k, v in CLASS_NAMES.items()),
                nodata="255 = no data or cloud in either scene",
            )
        to_cog(tmp_path, out_path, overview_resampling="MODE", predictor=False)
    log.info("change classes (pixels): %s", dict(zip(CLASS_NAMES.values(), counts.tolist(), strict=True)))
    return out_path


# ------------------------------------------------------------------------------------------------ summaries
def pixel_window(src: rasterio.DatasetReader, bounds: tuple[float, float, float, float]) -> Window | None:
    """Whole-pixel window covering ``bounds`` (raster CRS), clipped to the raster; None when outside."""
    w = from_bounds(*bounds, transform=src.transform)
    c0, r0 = max(math.floor(w.col_off), 0), max(math.floor(w.row_off), 0)
    c1 = min(math.ceil(w.col_off + w.width), src.width)
    r1 = min(math.ceil(w.row_off + w.height), src.height)
    if c1 <= c0 or r1 <= r0:
        return None
    return Window(c0, r0, c1 - c0, r1 - r0)


def change_summary(change_path: Path, polygons: list[DetectedPolygon]) -> list[dict[str, Any]]:
    """For each polygon (EPSG:4326): fractions of classes 1/2/3 among its valid change pixels.

    Each dict: ``fractions`` {class name: share of valid pixels}, ``valid_pixels``, ``change_class`` (name of the
    most frequent change class, or "stable"/None when no change / no valid pixel) and ``change_fraction`` (its
    share). Pixels are those whose centre is inside the polygon, or all touched pixels for polygons smaller than
    one pixel.
    """
    out: list[dict[str, Any]] = []
    with rasterio.open(change_path) as src:
        to_crs = Transformer.from_crs("EPSG:4326", src.crs, always_xy=True)
        for poly in polygons:
            geom = shapely.transform(poly.geometry, lambda xy: np.column_stack(to_crs.transform(xy[:, 0], xy[:, 1])))
            counts = np.zeros(len(CLASS_NAMES), np.int64)
            win = pixel_window(src, geom.bounds)
            if win is not None:
                data = src.read(1, window=win)
                wt = src.window_transform(win)
                inside = ~geometry_mask([geom], data.shape, wt, all_touched=False)
                if not inside.any():
                    inside = ~geometry_mask([geom], data.shape, wt, all_touched=True)
                vals = data[inside & (data != NODATA)]
                counts = np.bincount(vals, minlength=len(CLASS_NAMES))[: len(CLASS_NAMES)]
            n = int(counts.sum())
            fractions = {CLASS_NAMES[k]: (float(counts[k]) / n if n else 0.0) for k in (1, 2, 3)}
            best = max((1, 2, 3), key=lambda k: counts[k])
            if n == 0:
                cls, frac = None, 0.0
            elif counts[best] == 0:
                cls, frac = "stable", 0.0
            else:
                cls, frac = CLASS_NAMES[best], float(counts[best]) / n
            out.append({"fractions": fractions, "valid_pixels": n, "change_class": cls, "change_fraction": frac})
    return out
