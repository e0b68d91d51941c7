"""The natural-sand context rule (river sandbars) on real renderings of the confuser set, through both paths:
the in-memory class map (evaluation) and the polygons of a run read back from a reflectance GeoTIFF (service)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import rasterio
import shapely
from conftest import S2_UNET

from amberwatch.detect.confusers_rule import (
    CARD_KEY,
    ContextRule,
    WaterBlocks,
    apply_to_result,
    filter_class_map,
    filter_polygons,
    water_mask,
)
from amberwatch.detect.decision import DecisionRule, object_class_map
from amberwatch.detect.registry import get_model
from amberwatch.detect.session import create_session
from amberwatch.detect.vectorize import vectorize
from amberwatch.errors import InputError
from amberwatch.types import REFLECTANCE_SCALE, DetectionResult, IngestedScene
from amberwatch_training import confusers
from amberwatch_training.export import predict

REPO = Path(__file__).resolve().parents[1]
REGISTRY = REPO / "models" / "registry"
BANDS = ["blue", "green", "red", "rededge1", "rededge2", "rededge3", "nir", "nir08", "swir16", "swir22"]
CARD_RULE = DecisionRule(0.7, 0.9)
# Two chips of the confuser set (late summer): a test-split dry sandbar that s2-unet 1.2.0 flags (the control site
# of the chip is found), and a validation-split beach chip whose control site lies on the lake shore (ring of
# large water 0.34) with ponds of its own.
SANDBAR = ("sandbar", "late_summer", "test", 3)
SHORE_SITE = ("beach", "late_summer", "val", 23)


@pytest.fixture(scope="module")
def chips(s2_scene):
    summer = confusers.late_summer_scene(s2_scene)
    lc = confusers.LandCover.of(s2_scene)
    session, _ = create_session(S2_UNET, ["CPUExecutionProvider"], threads=1)
    out = {}
    for key in (SANDBAR, SHORE_SITE):
        kind, season, split, i = key
        chip = confusers.make_chip(summer, lc, kind, season, split, confusers.seed_of(kind, season, split, i))
        probs = predict(session, chip.rendered.stack, 8)
        out[key] = (chip, object_class_map(np.rint(probs[1:] * 255).astype(np.uint8), CARD_RULE), summer)
    return out


def _objects_on(cls: np.ndarray, mask: np.ndarray) -> int:
    from scipy import ndimage

    comps, _ = ndimage.label(cls > 0, structure=np.ones((3, 3), bool))
    near = ndimage.binary_dilation(mask, structure=np.ones((3, 3), bool))
    return len(set(np.unique(comps[near]).tolist()) - {0})


def test_class_map_rule_drops_the_sandbar_and_keeps_the_sites(chips):
    rule = ContextRule()
    chip, cls, _ = chips[SANDBAR]
    r = chip.rendered
    water = water_mask(r.stack[1], r.stack[6], rule.ndwi_water)
    bar = chip.confuser & (r.site_ids == 0)
    assert _objects_on(cls, bar) >= 1, "s2-unet 1.2.0 no longer flags this sandbar: pick another chip"
    out = filter_class_map(cls, water, rule)
    assert _objects_on(out, bar) == 0
    assert _objects_on(out, r.site_ids > 0) == _objects_on(cls, r.site_ids > 0) >= 1  # the control site stays
    chip, cls, _ = chips[SHORE_SITE]
    r = chip.rendered
    water = water_mask(r.stack[1], r.stack[6], rule.ndwi_water)
    assert _objects_on(cls, r.site_ids > 0) >= 1
    out = filter_class_map(cls, water, rule)
    assert _objects_on(out, r.site_ids > 0) == _objects_on(cls, r.site_ids > 0)
    # the same site object is dropped by a rule that ignores its ponds: the kept answer is the rule's doing
    greedy = ContextRule(max_pond_share=1.0, min_elongation=1.0, min_ring_water=0.1)
    assert _objects_on(filter_class_map(cls, water, greedy), r.site_ids > 0) < _objects_on(cls, r.site_ids > 0)


def _write_scene(tmp: Path, chip: confusers.ConfuserChip, cls: np.ndarray, scene) -> tuple[Path, Path]:
    """The chip as a uint16 reflectance GeoTIFF (band descriptions = band names) and its class map as a
    probability raster (pit/pond x255) on the same grid."""
    r0, c0, h, w = chip.window
    transform = scene.transform * rasterio.Affine.translation(c0, r0)
    refl, prob = tmp / "refl.tif", tmp / "prob.tif"
    dn = np.clip(np.rint(chip.rendered.stack / REFLECTANCE_SCALE), 1, 65535).astype(np.uint16)
    with rasterio.open(refl, "w", driver="GTiff", width=w, height=h, count=10, dtype="uint16", crs=scene.crs,
                       transform=transform) as dst:
        dst.write(dn)
        dst.descriptions = tuple(BANDS)
    p = np.stack([np.where(cls == 1, 255, 0), np.where(cls == 2, 255, 0)]).astype(np.uint8)
    with rasterio.open(prob, "w", driver="GTiff", width=w, height=h, count=2, dtype="uint8", crs=scene.crs,
                       transform=transform) as dst:
        dst.write(p)
    return refl, prob


def _pixel_hits(polys, refl: Path, mask: np.ndarray) -> int:
    """Polygons whose area touches ``mask`` (pixels of the reflectance grid)."""
    from rasterio.features import rasterize
    from rasterio.warp import transform_geom

    with rasterio.open(refl) as src:
        n = 0
        for p in polys:
            g = transform_geom("EPSG:4326", src.crs, shapely.geometry.mapping(p.geometry))
            px = rasterize([(g, 1)], out_shape=src.shape, transform=src.transform, all_touched=True) > 0
            n += bool((px & mask).any())
        return n


def test_service_path_drops_sandbar_polygons_through_the_registered_card(chips, tmp_path):
    chip, cls, scene = chips[SANDBAR]
    refl, prob = _write_scene(tmp_path, chip, cls, scene)
    polygons = vectorize(prob, rule=DecisionRule(0.5, 0.0), min_area_ha=0.05)
    bar = chip.confuser & (chip.rendered.site_ids == 0)
    site = chip.rendered.site_ids > 0
    assert _pixel_hits(polygons, refl, bar) >= 1 and _pixel_hits(polygons, refl, site) >= 1
    kept = filter_polygons(polygons, refl, 2, 7, ContextRule())
    assert _pixel_hits(kept, refl, bar) == 0
    assert _pixel_hits(kept, refl, site) == _pixel_hits(polygons, refl, site)
    # the run hook: the newest registered s2-unet carries the rule in its card and records what it dropped
    model = get_model(REGISTRY, "s2-unet", "sentinel2", {})
    assert ContextRule.from_card(model.properties) == ContextRule()
    with rasterio.open(refl) as src:
        bounds = tuple(src.bounds)
    ingested = IngestedScene("chip", "sentinel2a", "sentinel2", "L1C", datetime(2017, 2, 16, tzinfo=UTC), BANDS,
                             10.0, str(scene.crs), bounds, shapely.box(0, 0, 1, 1), refl, None, "test")
    result = DetectionResult("chip", model.name, model.version, ingested.acquired, polygons, prob, "CPU")
    out = apply_to_result(result, ingested, model)
    assert len(out.polygons) == len(kept) < len(polygons)
    assert out.parameters["context_rule_dropped"] == len(polygons) - len(kept)
    old = get_model(REGISTRY, "s2-unet@1.2.0", "sentinel2", {})
    assert CARD_KEY not in old.properties and apply_to_result(result, ingested, old) is result


def test_context_rule_from_card_checks_its_numbers():
    assert ContextRule.from_card({}) is None
    rule = ContextRule.from_card({CARD_KEY: {"min_ring_water": "0.3", "ring_px": 3, "chosen_on": "validation"}})
    assert rule == ContextRule(min_ring_water=0.3, ring_px=3)
    with pytest.raises(InputError, match="min_ring_water"):
        ContextRule(min_ring_water=1.5)


def test_water_blocks_equal_a_direct_read(tmp_path: Path) -> None:
    """The block-cached water mask of any window (across block borders, at the raster's ragged edges) is what
    reading that window and computing NDWI gives; each block is decoded once."""
    rng = np.random.default_rng(3)
    h, w = 650, 700  # 256-px blocks: ragged last row and column of blocks
    data = rng.integers(1, 4000, size=(3, h, w), dtype=np.uint16)
    path = tmp_path / "refl.tif"
    with rasterio.open(path, "w", driver="GTiff", width=w, height=h, count=3, dtype="uint16", tiled=True,
                       blockxsize=256, blockysize=256, interleave="pixel") as dst:
        dst.write(data)
    with rasterio.open(path) as src:
        blocks = WaterBlocks(src, 2, 3, 0.1)
        for r0, r1, c0, c1 in [(0, 1, 0, 1), (250, 270, 250, 270), (600, 650, 640, 700), (0, 650, 0, 700),
                               (100, 513, 511, 515)]:
            got = blocks.window(slice(r0, r1), slice(c0, c1))
            green, nir = data[1, r0:r1, c0:c1] * REFLECTANCE_SCALE, data[2, r0:r1, c0:c1] * REFLECTANCE_SCALE
            assert np.array_equal(got, water_mask(green, nir, 0.1)), (r0, r1, c0, c1)
        assert len(blocks._blocks) == 9  # 3 x 3 blocks, each decoded once
