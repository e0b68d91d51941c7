"""Training chips from user polygons: a scene raster + GeoPackage/GeoJSON polygons with a ``class`` of pit/pond
(or ``background``: negatives, such as the ``rejected`` layer of ``amberwatch labels export``)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pyogrio.raw
import rasterio
import rasterio.features
import shapely
from pyproj import CRS, Transformer
from rasterio.windows import Window

from amberwatch.errors import InputError

CLASS_VALUES = {"pit": 1, "pond": 2, "background": 0}  # background: a labelled negative (label 0 everywhere)


class NoPolygonsError(InputError):
    """The polygon file (layer) has no polygon at all, or none on the raster: nothing to cut chips from."""


def read_polygons(path: Path, target_crs: str, layer: str | None = None) -> list[tuple[shapely.Geometry, int]]:
    """(geometry in ``target_crs``, class value) of every polygon of ``layer`` (default: the first); raises
    InputError on a bad file."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"polygon file not found: {path}")
    try:
        meta, _, wkb, fields = pyogrio.raw.read(path, layer=layer)
    except Exception as err:  # noqa: BLE001 - report any GDAL/OGR reading problem verbatim
        raise InputError(f"cannot read polygons from {path}: {err}") from err
    names = [str(n).lower() for n in meta["fields"]]
    if "class" not in names:
        raise InputError(
            f"{path}: polygons need a 'class' attribute with values pit/pond/background; "
            f"found fields {list(meta['fields'])}"
        )
    values = fields[names.index("class")]
    geoms = shapely.from_wkb(wkb)
    src_crs = meta.get("crs") or "EPSG:4326"
    to_target = Transformer.from_crs(CRS.from_user_input(src_crs), CRS.from_user_input(target_crs), always_xy=True)
    out = []
    for i, (g, v) in enumerate(zip(geoms, values, strict=True)):
        if v is None or str(v).strip() == "":
            raise InputError(f"{path}: feature {i} has no 'class' value; set it to 'pit', 'pond' or 'background'")
        key = str(v).strip().lower()
        if key not in CLASS_VALUES:
            raise InputError(f"{path}: feature {i} has class {v!r}; allowed values are 'pit', 'pond' and 'background'")
        if g is None or g.is_empty:
            continue
        if shapely.get_type_id(g) not in (3, 6):
            raise InputError(f"{path}: feature {i} is a {g.geom_type}; only Polygon/MultiPolygon can be labels")
        g = shapely.transform(g, lambda xy: np.column_stack(to_target.transform(xy[:, 0], xy[:, 1])))
        out.append((shapely.make_valid(g), CLASS_VALUES[key]))
    if not out:
        raise NoPolygonsError(f"{path}: no polygons found")
    return out


def chips_from_polygons(scene_tif: Path, polygons_path: Path, out_dir: Path, size: int = 96,
                        layer: str | None = None) -> list[Path]:
    """Cut ``size`` x ``size`` chips (image + uint8 label 0/1/2) around every labelled polygon of a scene
    (``layer``: of a GeoPackage with several, e.g. ``rejected``; default the first).

    Writes ``chip_NNNN.tif`` (all bands of the scene, same dtype/descriptions), ``chip_NNNN_label.tif`` and
    ``chips.json`` (index with windows).  Labels: pond wins over pit where they overlap; everything else 0.
    Returns the image chip paths.
    """
    out_dir = Path(out_dir)
    with rasterio.open(scene_tif) as src:
        if src.width < size or src.height < size:
            raise InputError(f"{scene_tif} is {src.width}x{src.height} px, smaller than the chip size {size}")
        polys = read_polygons(polygons_path, src.crs.to_string(), layer)
        shapes = sorted(polys, key=lambda p: p[1])  # ponds burnt last
        label = rasterio.features.rasterize(shapes, out_shape=(src.height, src.width), transform=src.transform,
                                            dtype="uint8")
        covered = rasterio.features.rasterize([(g, 1) for g, _ in polys], out_shape=(src.height, src.width),
                                              transform=src.transform, dtype="uint8")
        if not covered.any():
            raise NoPolygonsError(f"none of the polygons in {polygons_path} overlaps the raster {scene_tif}")
        out_dir.mkdir(parents=True, exist_ok=True)
        inv = ~src.transform
        windows: list[tuple[int, int]] = []
        for g, _ in polys:
            c = g.centroid
            col, row = inv * (c.x, c.y)
            r0 = int(np.clip(round(row) - size // 2, 0, src.height - size))
            c0 = int(np.clip(round(col) - size // 2, 0, src.width - size))
            if not (0 <= row < src.height and 0 <= col < src.width):
                continue
            if any(abs(r0 - a) < size // 2 and abs(c0 - b) < size // 2 for a, b in windows):
                continue  # mostly covered by an earlier chip
            windows.append((r0, c0))
        written, index = [], []
        for i, (r0, c0) in enumerate(windows):
            win = Window(c0, r0, size, size)
            prof = src.profile.copy()
            prof.update(driver="GTiff", width=size, height=size, transform=src.window_transform(win), tiled=False,
                        compress="deflate")
            for k in ("blockxsize", "blockysize"):
                prof.pop(k, None)
            img_path = out_dir / f"chip_{i:04d}.tif"
            with rasterio.open(img_path, "w", **prof) as dst:
                dst.write(src.read(window=win))
                dst.descriptions = src.descriptions
            lab_prof = dict(prof, count=1, dtype="uint8", nodata=None)
            with rasterio.open(out_dir / f"chip_{i:04d}_label.tif", "w", **lab_prof) as dst:
                dst.write(label[r0:r0 + size, c0:c0 + size], 1)
            written.append(img_path)
            sub = label[r0:r0 + size, c0:c0 + size]
            index.append({"image": img_path.name, "label": f"chip_{i:04d}_label.tif", "row": r0, "col": c0,
                          "pit_pixels": int((sub == 1).sum()), "pond_pixels": int((sub == 2).sum())})
    (out_dir / "chips.json").write_text(json.dumps({"scene": str(scene_tif), "polygons": str(polygons_path),
                                                    "layer": layer, "size": size, "chips": index}, indent=1))
    return written
