"""Confuser evaluation set for the Sentinel-2 model: look-alikes of amber mining in real scenes, two seasons.

Each confuser is drawn with the machinery of the mining simulation (:mod:`synth`: vector features, 2.5 m
rasterisation, sub-pixel mixing at each band's native grid) into a window of the real Sentinel-2 crop, next to one
simulated mining site (the control).  Spectra come, where the crop contains the land cover, from **real pixels**
of that land cover found by spectral rules (:class:`LandCover`); otherwise from the spectral library of
:mod:`spectra` or a documented derivation.  ``SPECTRUM_SOURCE`` says which, per kind.

Seasons: the crop is 2017-02-16 (winter, leaf-off, snow-free fields) and is used as is for ``winter``;
``late_summer`` is a documented transform of the same scene (:func:`late_summer_scene`), plus per-kind seasonal
surfaces (harvested dry fields, green gardens and dikes in summer; ploughed moist fields, drained fish ponds,
wet sand in winter).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import numpy as np
import rasterio.features
from affine import Affine
from scipy import ndimage
from shapely import affinity
from shapely.geometry import LineString, Point, box, shape
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from . import spectra, synth
from .scenes import Scene

KINDS = ("bare_field", "sand_road", "beach", "sand_quarry", "clear_cut", "village", "fish_ponds",
         "peat_extraction", "sandbar", "cloud_edge")
SEASONS = ("late_summer", "winter")
CHIP = 192  # px at 10 m (1.92 km), a multiple of the 60 m grid and of the model's input multiple

# Where each kind's surface spectra come from ("real": pixels of that land cover in the real crop)
SPECTRUM_SOURCE = {
    "bare_field": "real: bare-soil field pixels of the crop",
    "sand_road": "library: quartz sand / sand track (sub-pixel in the crop); forest tracks placed in real forest",
    "beach": "library: dry/wet quartz sand on the shores of the crop's real lakes",
    "sand_quarry": "library: quartz sand or limestone; pond water from real lake pixels",
    "clear_cut": "real: bare-soil x forest pixels mixed (slash), plus real green pixels in summer (regrowth)",
    "village": "real: settlement pixels (roofs/yards) and green/bare garden pixels; library asphalt street",
    "fish_ponds": "real: lake-water pixels, dikes from real green (summer) / bare+green (winter) pixels",
    "peat_extraction": "derived: dark organic-soil spectrum (no peat in the crop), see PEAT",
    "sandbar": "library: quartz sand (dry summer, wet winter) inside the crop's real water bodies",
    "cloud_edge": "project cloud model: real-scene cloud TOA, fractal edges and displaced shadows",
}
# Dry milled peat (Histosol-like organic soil): dark and flat in the visible, rising slowly to NIR and SWIR.
# Not in the crop: values are rounded from published organic-soil / peat-bog reflectance (ECOSTRESS v1 Histosol
# class; Sentinel-2 studies of milled-peat fields report ~0.04-0.08 visible, 0.10-0.15 NIR, 0.15-0.2 SWIR).
# Plausible because organic matter darkens soils ~2-3x against mineral soils (Baumgardner et al. 1985).
PEAT = [0.035, 0.04, 0.05, 0.065, 0.075, 0.085, 0.095, 0.105, 0.11, 0.11, 0.11, 0.16, 0.13]
WATER_KINDS = ("beach", "sandbar", "cloud_edge")  # drawn on or along real water (or in the sky)
POOLS = ("bare_soil", "forest", "green", "water", "settlement")


# ----------------------------------------------------------------------------------------------- real land cover
@dataclass
class LandCover:
    """Masks (model grid) of real land-cover classes found in the crop by spectral rules."""

    masks: dict[str, np.ndarray]
    ndvi: np.ndarray

    @classmethod
    def of(cls, scene: Scene) -> LandCover:
        st = scene.model_stack()
        blue, red, nir, sw16 = st[0], st[2], st[6], st[8]
        ndvi = (nir - red) / (nir + red + 1e-6)
        cloud = scene.cloud if scene.cloud is not None else np.zeros(scene.shape, bool)
        land = ~ndimage.binary_dilation(scene.water, iterations=3) & ~ndimage.binary_dilation(cloud, iterations=10)
        sd_nir = _local_std(nir, 5)
        sd_sw = _local_std(sw16, 5)
        homog = sd_nir < 0.015
        masks = {
            "bare_soil": land & homog & (ndvi < 0.17) & (sw16 > 0.15),
            "forest": land & homog & (ndvi > 0.3) & (nir < 0.2) & (sw16 < 0.11),
            "green": land & (ndvi > 0.42) & (sw16 >= 0.11),
            "water": ndimage.binary_erosion(scene.water, iterations=3) & ~ndimage.binary_dilation(cloud, iterations=10),
            "settlement": land & (sd_sw > 0.03) & (ndvi < 0.3) & (blue > 0.14),
        }
        return cls(masks, ndvi)

    def sample(self, rng: np.random.Generator, scene: Scene, pool: str) -> np.ndarray:
        """Surface reflectance at the 13 band wavelengths of one real pixel of ``pool`` (TOA inverted with the
        scene's own path reflectance and transmittance: the renderer maps it back to exactly that TOA)."""
        rows, cols = np.nonzero(self.masks[pool])
        if rows.size == 0:
            raise ValueError(f"no real pixels of land cover {pool!r} in this scene")
        i = int(rng.integers(rows.size))
        return pixel_surface(scene, int(rows[i]), int(cols[i]))


def _local_std(a: np.ndarray, size: int) -> np.ndarray:
    m = ndimage.uniform_filter(a, size)
    return np.sqrt(np.clip(ndimage.uniform_filter(a * a, size) - m * m, 0, None))


def pixel_surface(scene: Scene, row: int, col: int) -> np.ndarray:
    """Surface reflectance [13] (band-centre order of ``spectra.WAVELENGTHS``) of a real model-grid pixel."""
    paths = spectra.cached_path_reflectance(scene)
    out = np.zeros(len(spectra.WAVELENGTHS))
    for band in scene.bands.values():
        f = int(round(band.res / scene.res))
        toa = float(band.data[min(row // f, band.data.shape[0] - 1), min(col // f, band.data.shape[1] - 1)])
        t = spectra.transmittance(band.wavelength)
        j = int(np.argmin(np.abs(spectra.WAVELENGTHS - band.wavelength)))
        out[j] = max(0.0, (toa - paths[band.name]) / t) if t > 0 else 0.0
    return out


@dataclass
class SpectrumFeature(synth.Feature):
    """A synth feature whose surface spectrum is given explicitly (13 values at ``spectra.WAVELENGTHS``)."""

    spectrum: np.ndarray | None = None

    def reflectance(self, wavelength: float) -> float:
        if self.spectrum is None:
            return super().reflectance(wavelength)
        return float(np.interp(wavelength, spectra.WAVELENGTHS, self.spectrum)) * self.gain


def library(material: str) -> np.ndarray:
    return np.asarray(spectra.SURFACE[material], float)


def wet(s: np.ndarray) -> np.ndarray:
    """Wetting darkens soils: VNIR x0.55, SWIR x0.4 (Lobell & Asner 2002)."""
    return s * np.where(spectra.WAVELENGTHS > 1500, 0.4, 0.55)


# ----------------------------------------------------------------------------------------------- seasons
def late_summer_scene(scene: Scene) -> Scene:
    """Documented late-summer transform of the winter crop (limits in docs/models.md):

    vegetated land pixels move towards a full green canopy (library grass at TOA) by
    a = 0.7 * clip((NDVI_winter - 0.17) / 0.3, 0, 1) (TOA NDVI; 0.17 is the bare-soil limit of
    :class:`LandCover`): forest and winter crops green up, bare (ploughed/harvested) fields stay bare,
    water and the real cloud stripe are unchanged.  Sun angle, shadows and soil moisture are not changed
    (the crop's February light stays).
    """
    lc = LandCover.of(scene)  # winter NDVI of the real crop
    cloud = scene.cloud if scene.cloud is not None else np.zeros(scene.shape, bool)
    a10 = 0.7 * np.clip((lc.ndvi - 0.17) / 0.3, 0, 1) * (~scene.water & ~cloud)
    paths = spectra.cached_path_reflectance(scene)
    out = copy.copy(scene)
    out.bands = {}
    for name, band in scene.bands.items():
        f = int(round(band.res / scene.res))
        h, w = band.data.shape
        a = np.zeros((h * f, w * f), np.float32)
        a[: a10.shape[0], : a10.shape[1]] = a10[: h * f, : w * f]
        a = a.reshape(h, f, w, f).mean(axis=(1, 3))
        t = spectra.transmittance(band.wavelength)
        canopy = paths[name] + t * spectra.surface("grass", band.wavelength) if t > 0 else band.data
        out.bands[name] = synth.Band(band.band_id, name, band.wavelength, band.res,
                                     ((1 - a) * band.data + a * canopy).astype(np.float32))
    out._path_reflectance = paths  # type: ignore[attr-defined]
    return out


# ----------------------------------------------------------------------------------------------- confusers
def make_confuser(rng: np.random.Generator, kind: str, season: str, scene: Scene, lc: LandCover,
                  cx: float, cy: float, window: tuple[int, int, int, int]) -> list[synth.Feature]:
    """Features of one confuser of ``kind`` centred near (cx, cy), in ``season`` (all labelled background)."""
    if kind not in KINDS or season not in SEASONS:
        raise ValueError(f"unknown confuser kind/season {kind!r}/{season!r}")
    summer = season == "late_summer"
    out: list[synth.Feature] = []

    def add(g: BaseGeometry, s: np.ndarray, gain: float = 1.0, material: str = "real") -> None:
        if not g.is_empty:
            out.append(SpectrumFeature(g, material, 0, kind, gain, spectrum=np.asarray(s, float)))

    def real(pool: str) -> np.ndarray:
        return lc.sample(rng, scene, pool)

    if kind == "bare_field":  # harvested (summer: dry, brighter) or ploughed (winter, as the crop) field
        s = real("bare_soil") * (rng.uniform(1.05, 1.3) if summer else rng.uniform(0.9, 1.1))
        add(synth.rect(rng, cx, cy, rng.uniform(120, 700), rng.uniform(80, 400)), s)
    elif kind == "sand_road":
        line = synth.polyline(rng, cx, cy, rng.uniform(300, 1500), n=5, wiggle=0.25)
        mat = "dry_sand" if rng.random() < 0.5 else "track"
        add(line.buffer(rng.uniform(2, 4)), library(mat) if summer else wet(library(mat)) * 1.4, rng.uniform(0.75, 1.1),
            mat)
    elif kind == "beach":
        g = synth._beach(rng, scene, window)
        if g is not None:
            add(g, library("dry_sand"), rng.uniform(0.8, 1.15), "dry_sand")
            inner = g.buffer(-2.0 if summer else -0.5)
            if not inner.is_empty and (not summer or rng.random() < 0.5):
                add(inner, library("wet_sand"), rng.uniform(0.9, 1.1), "wet_sand")
    elif kind == "sand_quarry":
        q = synth.rect(rng, cx, cy, rng.uniform(250, 900), rng.uniform(200, 600))
        mat = "dry_sand" if rng.random() < 0.7 else "limestone"
        add(q, library(mat) if summer else 0.5 * (library(mat) + wet(library(mat))), rng.uniform(0.85, 1.2), mat)
        if rng.random() < 0.5:
            add(affinity.scale(q, 0.45, 0.45), real("water"))
    elif kind == "clear_cut":
        w = rng.uniform(0.3, 0.6)
        s = (1 - w) * real("bare_soil") + w * real("forest")
        if summer:
            s = 0.7 * s + 0.3 * real("green")
        add(synth.rect(rng, cx, cy, rng.uniform(80, 400), rng.uniform(60, 250)), s, rng.uniform(0.9, 1.15))
    elif kind == "village":
        road = synth.polyline(rng, cx, cy, rng.uniform(200, 700), n=3, wiggle=0.2)
        add(road.buffer(rng.uniform(2.5, 4)), library("asphalt"), rng.uniform(0.9, 1.2), "asphalt")
        for _ in range(int(rng.integers(15, 50))):
            p = road.interpolate(rng.uniform(0, road.length))
            side = rng.choice([-1, 1]) * rng.uniform(10, 25)
            ang = rng.uniform(0, 2 * np.pi)
            hx, hy = p.x + side * np.cos(ang), p.y + side * np.sin(ang)
            garden = real("green") if summer else 0.5 * (real("green") + real("bare_soil"))
            add(synth.rect(rng, hx + np.cos(ang) * 15, hy + np.sin(ang) * 15, rng.uniform(15, 30), rng.uniform(20, 40)),
                garden)
            add(synth.rect(rng, hx, hy, rng.uniform(10, 18), rng.uniform(10, 16)), real("settlement"))
    elif kind == "fish_ponds":
        n_x, n_y = int(rng.integers(1, 4)), int(rng.integers(1, 4))
        pw, ph, dike = rng.uniform(80, 250), rng.uniform(60, 200), rng.uniform(8, 15)
        ang = rng.uniform(0, 180)
        x0, y0 = cx - n_x * (pw + dike) / 2, cy - n_y * (ph + dike) / 2
        dikes = box(x0 - dike, y0 - dike, x0 + n_x * (pw + dike), y0 + n_y * (ph + dike))
        dike_s = real("green") if summer else 0.5 * (real("green") + real("bare_soil"))
        add(affinity.rotate(dikes, ang, origin=(cx, cy)), dike_s)
        for i in range(n_x):
            for j in range(n_y):
                pond = box(x0 + i * (pw + dike), y0 + j * (ph + dike), x0 + i * (pw + dike) + pw,
                           y0 + j * (ph + dike) + ph)
                pond = affinity.rotate(pond, ang, origin=(cx, cy))
                if not summer and rng.random() < 0.5:  # drained for the winter: wet mud bottom and a puddle
                    add(pond, wet(real("bare_soil")) * rng.uniform(0.9, 1.2))
                    add(affinity.scale(pond, 0.3, 0.3), real("water"))
                else:
                    add(pond, real("water"), rng.uniform(0.9, 1.2))
    elif kind == "peat_extraction":
        w, h = rng.uniform(300, 1200), rng.uniform(200, 800)
        ang = rng.uniform(0, 180)
        peat = np.asarray(PEAT) * (rng.uniform(0.9, 1.25) if summer else rng.uniform(0.6, 0.85))
        add(affinity.rotate(box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), ang, origin=(cx, cy)), peat)
        strip = rng.uniform(15, 25)
        for k in range(1, int(h // strip)):  # drainage ditches between the milled strips
            y = cy - h / 2 + k * strip
            ditch = LineString([(cx - w / 2, y), (cx + w / 2, y)]).buffer(rng.uniform(1.0, 1.8))
            add(affinity.rotate(ditch, ang, origin=(cx, cy)), library("dark_water"), 1.0, "dark_water")
    elif kind == "sandbar":
        for _ in range(int(rng.integers(1, 4))):
            px, py = cx + rng.normal(0, 60), cy + rng.normal(0, 60)
            bar = affinity.scale(synth.blob(rng, px, py, rng.uniform(10, 40), 0.3), rng.uniform(1.5, 3.5), 1.0)
            bar = affinity.rotate(bar, rng.uniform(0, 180), origin=(px, py))
            add(bar, library("dry_sand") if summer else library("wet_sand"), rng.uniform(0.85, 1.15),
                "dry_sand" if summer else "wet_sand")
    # cloud_edge has no surface features: its clouds are drawn by :func:`make_chip`
    return out


@dataclass
class ConfuserChip:
    """One evaluation chip: a confuser of ``kind`` and (usually) one control mining site in a real scene window."""

    kind: str
    season: str
    split: str
    rendered: synth.Rendered
    confuser: np.ndarray  # bool, model grid: pixels touched by the confuser (cloud edges: edge band and shadow)
    window: tuple[int, int, int, int]
    seed: int
    n_features: int = 0
    spectrum_source: str = ""
    extra: dict = field(default_factory=dict)


def _window(rng: np.random.Generator, scene: Scene, region: synth.Region, need: np.ndarray | None,
            size: int) -> tuple[int, int, int, int]:
    k = synth.coarse_factor(scene)
    c_lo, c_hi = -(-region.col0 // k), (region.col1 - size) // k
    r_hi = (scene.shape[0] - size) // k
    best = None
    for _ in range(60):
        r0, c0 = int(rng.integers(0, r_hi + 1)) * k, int(rng.integers(c_lo, c_hi + 1)) * k
        if need is None:
            return (r0, c0, size, size)
        q = size // 4
        centre = need[r0 + q: r0 + size - q, c0 + q: c0 + size - q]
        if centre.mean() > 0.03:
            return (r0, c0, size, size)
        if best is None or centre.mean() > best[0]:
            best = (centre.mean(), (r0, c0, size, size))
    assert best is not None
    return best[1]


def make_chip(scene: Scene, lc: LandCover, kind: str, season: str, split: str, seed: int,
              size: int = CHIP, control_site: bool = True) -> ConfuserChip:
    """Render one confuser of ``kind`` (and a control site) into a window of the ``split`` region of ``scene``
    (``scene`` must already be in ``season``: :func:`late_summer_scene` or the crop itself)."""
    rng = np.random.default_rng(seed)
    region = synth.split_regions(scene)[split]
    need = {"beach": scene.water, "sandbar": lc.masks["water"], "clear_cut": lc.masks["forest"]}.get(kind)
    if kind == "sand_road" and rng.random() < 0.5:
        need = lc.masks["forest"]  # forest track
    window = _window(rng, scene, region, need, size)
    r0, c0, h, w = window
    t = scene.transform
    q = size // 4
    where = need if need is not None else ~scene.water
    rows, cols = np.nonzero(where[r0 + q: r0 + h - q, c0 + q: c0 + w - q])
    if rows.size:
        i = int(rng.integers(rows.size))
        cx, cy = t * (c0 + q + cols[i] + 0.5, r0 + q + rows[i] + 0.5)
    else:
        cx, cy = t * (c0 + w / 2, r0 + h / 2)
    feats = make_confuser(rng, kind, season, scene, lc, cx, cy, window)
    x0, y1 = t * (c0, r0)
    x1, y0 = t * (c0 + w, r0 + h)
    frame = box(x0, y0, x1, y1)
    if kind not in WATER_KINDS:  # land confusers never run over the real lakes of the window
        land = frame.difference(_water_geometry(scene, window))
        for f in feats:
            f.geometry = f.geometry.intersection(land)
    feats = [f for f in feats if not f.geometry.is_empty and f.geometry.intersects(frame)]
    conf_ext = unary_union([f.geometry for f in feats]) if feats else Point(cx, cy).buffer(1)
    clouds = None
    if kind == "cloud_edge":
        clouds = _edge_clouds(rng, (h, w), scene.res)
    site: list[synth.Feature] = []
    if control_site:
        for _ in range(40):
            sx, sy = rng.uniform(x0 + 150, x1 - 150), rng.uniform(y0 + 150, y1 - 150)
            col, row = ~t * (sx, sy)
            if scene.water[int(row), int(col)] or conf_ext.distance(Point(sx, sy)) < 150:
                continue
            cand = synth.make_site(rng, sx, sy, 1)
            ext = synth.site_extent(cand)
            if ext.is_empty or not frame.contains(ext) or ext.distance(conf_ext) < 60:
                continue
            if clouds is not None and clouds.alpha[int(row) - r0, int(col) - c0] > 0.05:
                continue
            site = cand
            break
    rendered = synth.render_tiled(scene, window, feats + site, clouds)
    if kind == "cloud_edge" and clouds is not None:
        confuser = ((clouds.alpha > 0.02) & (clouds.alpha < 0.6)) | (clouds.shadow > 0.1)
    else:
        confuser = rendered.negative
    return ConfuserChip(kind, season, split, rendered, confuser, window, seed, len(feats), SPECTRUM_SOURCE[kind])


def _water_geometry(scene: Scene, window: tuple[int, int, int, int]) -> BaseGeometry:
    """The real water of a window as polygons (scene CRS)."""
    r0, c0, h, w = window
    water = scene.water[r0:r0 + h, c0:c0 + w]
    t = scene.transform * Affine.translation(c0, r0)
    polys = [shape(g) for g, v in rasterio.features.shapes(water.astype(np.uint8), mask=water, transform=t) if v == 1]
    return unary_union(polys) if polys else Point(0, 0).buffer(0)


def _edge_clouds(rng: np.random.Generator, shape: tuple[int, int], res: float) -> synth.Clouds:
    """Project cloud field (:func:`synth.make_clouds`) redrawn until a cloud edge crosses the chip's middle."""
    cl = synth.make_clouds(rng, shape, res)
    for _ in range(20):
        edge = (cl.alpha > 0.02) & (cl.alpha < 0.6)
        if 0.05 < edge.mean() < 0.6 and (cl.alpha > 0.02).mean() < 0.7:
            break
        cl = synth.make_clouds(rng, shape, res)
    if not cl.shadow.any():
        dy, dx = rng.uniform(-1, 1, 2) * rng.uniform(100, 600) / res
        cl.shadow = np.clip(ndimage.shift(cl.alpha, (dy, dx), order=1, mode="constant"), 0, 1) * 0.6
    return cl


def seed_of(kind: str, season: str, split: str, i: int, base: int = 77_000) -> int:
    """Seeds of the confuser set: disjoint from the training (0..), validation (5000..) and test (9000..) seeds."""
    split_no = ("val", "test").index(split)
    return base + 100_000 * SEASONS.index(season) + 10_000 * KINDS.index(kind) + 1_000 * split_no + i


def build_set(scene: Scene, n_per_kind: int, splits: tuple[str, ...] = ("val", "test"),
              kinds: tuple[str, ...] = KINDS, seasons: tuple[str, ...] = SEASONS, size: int = CHIP,
              summer: Scene | None = None) -> list[ConfuserChip]:
    """``n_per_kind`` chips of every kind x season x split (winter = ``scene``, the real February crop)."""
    out = []
    lc = LandCover.of(scene)  # land cover from the real crop; summer spectra are sampled from the summer scene
    for season in seasons:
        sc = scene if season == "winter" else (summer or late_summer_scene(scene))
        for split in splits:
            for kind in kinds:
                for i in range(n_per_kind):
                    out.append(make_chip(sc, lc, kind, season, split, seed_of(kind, season, split, i), size))
    return out
