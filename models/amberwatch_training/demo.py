"""Build the demo scene: the real Sentinel-2 L1C crop (east half) with freshly simulated amber-mining sites.

    python -m amberwatch_training.demo --out demo
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import rasterio
import shapely
from pyproj import Transformer
from shapely.geometry import mapping
from shapely.ops import unary_union

from . import synth
from .scenes import S2_BAND_INFO, Scene, load_sentinel2

DEMO_NAME = "S2_L1C_T33UUU_20170216T102101_amber_demo.tif"
DEMO_SEED = 20_170_216  # differs from every training / evaluation seed
BAND_IDS = ("B01", "B02", "B03", "B04", "B05", "B06", "B07", "B08", "B8A", "B09", "B10", "B11", "B12")
COL0 = 768  # east half: contains the validation and test regions (x >= 922) and 154 px of the training region
N_SITES, N_NEGATIVES = 24, 40


def _write_tif(path: Path, r: synth.Rendered, scene: Scene, seed: int, when: str, note: str) -> None:
    """13-band uint16 DN GeoTIFF, DEFLATE + predictor, band descriptions = S2 band ids, L1C tags."""
    dn = np.clip(np.round(r.stack * 10000), 1, 65535).astype(np.uint16)
    profile = {"driver": "GTiff", "width": dn.shape[2], "height": dn.shape[1], "count": len(BAND_IDS),
               "dtype": "uint16", "crs": scene.crs, "transform": r.transform, "tiled": True, "blockxsize": 256,
               "blockysize": 256, "compress": "deflate", "predictor": 2, "zlevel": 9, "interleave": "pixel",
               "nodata": 0}
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(dn)
        for i, b in enumerate(BAND_IDS, start=1):
            dst.set_band_description(i, b)
            dst.update_tags(i, eo_common_name=S2_BAND_INFO[b][0], native_resolution_m=str(S2_BAND_INFO[b][1]))
        dst.update_tags(ACQUISITION_DATETIME=when, SENSOR="sentinel2a", PROCESSING_LEVEL="L1C",
                        TILE_ID="T33UUU", REFLECTANCE_SCALE="0.0001", NOTE=note, AMBERWATCH_SIMULATED="true")


def site_polygons(features: list[synth.Feature]) -> list[dict]:
    """Per site: one 'pit' geometry (sand minus water) and one 'pond' geometry (mining water), scene CRS."""
    out = []
    for sid in sorted({f.site_id for f in features if f.site_id > 0}):
        mine = [f for f in features if f.site_id == sid]
        water = unary_union([f.geometry for f in mine if f.label == 2])
        sand = unary_union([f.geometry for f in mine if f.label == 1]).difference(water)
        for cls, g in (("pit", sand), ("pond", water)):
            if not g.is_empty:
                out.append({"site_id": int(sid), "class": cls, "geometry": g})
    return out


def write_geojson(items: list[dict], crs: str, path: Path, region_of=None) -> None:  # type: ignore[no-untyped-def]
    to_wgs = Transformer.from_crs(crs, "EPSG:4326", always_xy=True).transform
    feats = []
    for it in items:
        g = it.pop("geometry")
        props = dict(it, area_ha=round(g.area / 10_000, 4))
        if region_of is not None:
            props["region"] = region_of(g.centroid.x)
        g4326 = shapely.set_precision(shapely.transform(g, lambda xy: np.column_stack(to_wgs(xy[:, 0], xy[:, 1]))),
                                      1e-7)
        feats.append({"type": "Feature", "properties": props, "geometry": mapping(g4326)})
    path.write_text(json.dumps({"type": "FeatureCollection", "features": feats}, separators=(",", ":")))


def build_demo(out_dir: Path, seed: int = DEMO_SEED, scene: Scene | None = None) -> dict:
    """Write the demo GeoTIFF, truth.geojson and confusers.geojson; return a summary."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    scene = scene or load_sentinel2()
    rng = np.random.default_rng(seed)
    h = scene.shape[0]
    window = (0, COL0, h, scene.shape[1] - COL0)
    feats = synth.populate(rng, scene, window, N_SITES, N_NEGATIVES, negative_kinds=synth.NEGATIVE_KINDS)
    names = tuple(S2_BAND_INFO[b][0] for b in BAND_IDS)
    r = synth.render_tiled(scene, window, feats, None, bands=names)
    path = out_dir / DEMO_NAME
    _write_tif(path, r, scene, seed, "2017-02-16T10:21:01Z",
               "Real Copernicus Sentinel-2 L1C pixels (2017, via eo-box, MIT) with SIMULATED amber-mining sites and "
               f"confusers (amberwatch_training.demo, seed {seed}); not real mining.")
    regions = synth.split_regions(scene)

    def region_of(x: float) -> str:
        col = (x - scene.origin[0]) / scene.res
        return next((n for n, g in regions.items() if g.col0 <= col < g.col1), "outside")

    sites = site_polygons(feats)
    write_geojson(sites, scene.crs, out_dir / "truth.geojson", region_of)
    negs: dict[tuple[str, int], list] = {}
    for f in feats:
        if f.negative:
            negs.setdefault((f.negative, f.group), []).append(f.geometry)
    conf = [{"kind": k[0], "geometry": unary_union(g)} for k, g in negs.items()]
    write_geojson(conf, scene.crs, out_dir / "confusers.geojson", region_of)
    return {"path": str(path), "bytes": path.stat().st_size, "sites": len({s["site_id"] for s in sites}),
            "labelled_pixels": {"pit": int((r.label == 1).sum()), "pond": int((r.label == 2).sum())},
            "features": len(feats)}


SECOND_NAME = "S2_L1C_T33UUU_20180310T102021_amber_demo.tif"


def second_date_features(scene: Scene, seed: int = DEMO_SEED) -> tuple[list[synth.Feature], dict[int, str]]:
    """The first-date features changed one year later: some sites grown, one abandoned (revegetated), new sites."""
    rng = np.random.default_rng(seed)
    h = scene.shape[0]
    window = (0, COL0, h, scene.shape[1] - COL0)
    feats = synth.populate(rng, scene, window, N_SITES, N_NEGATIVES, negative_kinds=synth.NEGATIVE_KINDS)
    rng2 = np.random.default_rng(seed + 1)
    site_ids = sorted({f.site_id for f in feats if f.site_id > 0})
    status = {sid: "unchanged" for sid in site_ids}
    abandoned = int(rng2.choice(site_ids))
    status[abandoned] = "abandoned"
    grown = [int(s) for s in rng2.choice([s for s in site_ids if s != abandoned], size=len(site_ids) // 3,
                                         replace=False)]
    out: list[synth.Feature] = []
    for f in feats:
        if f.site_id == abandoned:  # grown over: vegetation with a little sand, no longer mining
            out.append(synth.Feature(f.geometry, "revegetated", 0, "old_site", 1.0, ("dry_sand", 0.25)))
        else:
            out.append(f)
    taken = [synth.site_extent([f for f in feats if f.site_id == s]) for s in site_ids]
    for sid in grown:  # a new cluster of pits next to the old one, same site id
        ext = synth.site_extent([f for f in feats if f.site_id == sid])
        c = ext.centroid
        ang = rng2.uniform(0, 2 * np.pi)
        d = np.sqrt(ext.area / np.pi) + rng2.uniform(20, 60)
        extra = synth.make_site(rng2, c.x + d * np.cos(ang), c.y + d * np.sin(ang), sid, 0.7)
        out.extend(f for f in extra if f.label > 0)
        status[sid] = "grown"
    new = synth.populate(rng2, scene, window, 6, 0, first_site_id=max(site_ids) + 1)
    for sid in sorted({f.site_id for f in new}):
        part = [f for f in new if f.site_id == sid]
        if any(t.buffer(100).intersects(synth.site_extent(part)) for t in taken):
            continue
        out.extend(part)
        status[sid] = "new"
    return out, status


def build_second_date(out_dir: Path, seed: int = DEMO_SEED, scene: Scene | None = None) -> dict:
    """Second-date demo scene for time series: same real pixels, mining changed (see README)."""
    out_dir = Path(out_dir)
    scene = scene or load_sentinel2()
    feats, status = second_date_features(scene, seed)
    h = scene.shape[0]
    window = (0, COL0, h, scene.shape[1] - COL0)
    names = tuple(S2_BAND_INFO[b][0] for b in BAND_IDS)
    r = synth.render_tiled(scene, window, feats, None, bands=names)
    path = out_dir / SECOND_NAME
    _write_tif(path, r, scene, seed, "2018-03-10T10:20:21Z",
               "SIMULATED SECOND DATE: the pixels are the same real Copernicus Sentinel-2 L1C 2017-02-16 "
               "acquisition (eo-box, MIT); the date is fictitious and only the simulated amber-mining sites "
               f"changed (grown, abandoned, new; amberwatch_training.demo seed {seed}). Not real mining.")
    sites = site_polygons(feats)
    for s in sites:
        s["status"] = status.get(s["site_id"], "unchanged")
    write_geojson(sites, scene.crs, out_dir / "truth_20180310.geojson")
    return {"path": str(path), "bytes": path.stat().st_size, "status": {k: list(status.values()).count(k)
                                                                         for k in set(status.values())}}


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", type=Path, default=Path("demo"))
    ap.add_argument("--seed", type=int, default=DEMO_SEED)
    ap.add_argument("--second-date", action="store_true", help="also write the 2018-03-10 time-series scene")
    a = ap.parse_args(argv)
    print(json.dumps(build_demo(a.out, a.seed), indent=2))
    if a.second_date:
        print(json.dumps(build_second_date(a.out, a.seed), indent=2))


if __name__ == "__main__":
    main()
