"""Simulated amber-mining sites and hard negatives rendered into real scenes with sub-pixel mixing.

Every feature is a shapely geometry in the scene CRS with a material.  Features are rasterised at 2.5 m, the
material TOA reflectance is area-averaged to each band's native grid (10/20/60 m for Sentinel-2, 30 m for Landsat)
and linearly mixed with the real background pixel, then 20/60 m bands are resampled bilinearly to the model grid.
Labels on the model grid: pond if >= 50 % of the pixel is mining water; else pit if >= 50 % is mining sand or water;
else background.  Tracks, revegetated old pits, natural lakes and all confusers are background.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import rasterio.features
from affine import Affine
from scipy.ndimage import binary_dilation, gaussian_filter, shift
from shapely import affinity
from shapely.geometry import LineString, Point, Polygon, box
from shapely.geometry.base import BaseGeometry
from shapely.ops import unary_union

from . import spectra
from .scenes import Band, Scene

HR = 2.5  # metres, rendering resolution
NEGATIVE_KINDS = ("bare_field", "sand_road", "beach", "clear_cut", "village", "quarry", "old_site")


@dataclass
class Feature:
    """One simulated surface patch."""

    geometry: BaseGeometry
    material: str
    site_id: int = 0  # > 0: part of mining site n
    negative: str = ""  # confuser kind for hard-negative statistics
    gain: float = 1.0  # per-feature brightness factor
    mix: tuple[str, float] | None = None  # (other material, weight): spectrum = (1-w)*material + w*other
    group: int = 0  # confuser instance number (for listing confusers)

    @property
    def label(self) -> int:
        return spectra.LABEL_OF_MATERIAL.get(self.material, 0) if self.site_id > 0 else 0

    def reflectance(self, wavelength: float) -> float:
        r = spectra.surface(self.material, wavelength)
        if self.mix is not None:
            r = (1 - self.mix[1]) * r + self.mix[1] * spectra.surface(self.mix[0], wavelength)
        return r * self.gain


@dataclass
class Clouds:
    """Synthetic cloud opacity and shadow fields on the model grid of a window."""

    alpha: np.ndarray
    shadow: np.ndarray
    brightness: float = 1.0


@dataclass
class Rendered:
    """Result of rendering a window: model-grid stack and truth rasters."""

    stack: np.ndarray  # [C, H, W] float32 reflectance (model bands, or all bands if asked)
    bands: list[str]
    label: np.ndarray  # uint8 0/1/2
    site_ids: np.ndarray  # int32: site id where any mining material touches the pixel
    negative: np.ndarray  # bool: pixel touched by a simulated confuser
    cloud: np.ndarray  # bool: synthetic or real cloud / shadow
    transform: Affine
    features: list[Feature] = field(default_factory=list)


# ----------------------------------------------------------------------------------------------- geometry helpers
def blob(rng: np.random.Generator, cx: float, cy: float, r: float, roughness: float = 0.25, n: int = 20) -> Polygon:
    """Irregular star-shaped polygon of mean radius r."""
    t = np.linspace(0, 2 * np.pi, n, endpoint=False)
    rad = np.ones(n)
    for k in (2, 3, 5):
        rad += roughness / k * rng.normal() * np.cos(k * t + rng.uniform(0, 2 * np.pi))
    rad = r * np.clip(rad, 0.4, 1.8)
    ex = rng.uniform(1.0, 1.6)
    poly = Polygon(np.c_[cx + ex * rad * np.cos(t), cy + rad * np.sin(t) / ex])
    return affinity.rotate(poly, rng.uniform(0, 180), origin=(cx, cy))  # star-shaped: always valid


def polyline(rng: np.random.Generator, x: float, y: float, length: float, n: int = 4,
             wiggle: float = 0.4) -> LineString:
    """Random wiggly line starting at (x, y)."""
    ang = rng.uniform(0, 2 * np.pi)
    pts = [(x, y)]
    for _ in range(n):
        ang += rng.normal(0, wiggle)
        x, y = x + np.cos(ang) * length / n, y + np.sin(ang) * length / n
        pts.append((x, y))
    return LineString(pts)


def rect(rng: np.random.Generator, cx: float, cy: float, w: float, h: float) -> Polygon:
    return affinity.rotate(box(cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), rng.uniform(0, 180), origin=(cx, cy))


# ----------------------------------------------------------------------------------------------- mining sites
def make_site(rng: np.random.Generator, cx: float, cy: float, site_id: int, size_scale: float = 1.0) -> list[Feature]:
    """A cluster of sand pits with water-filled pockmarks, ponds/canals, spoil mounds and tracks."""
    radius = float(np.exp(rng.uniform(np.log(25), np.log(160)))) * size_scale
    kind = rng.choice(["pockmarks", "ponds", "mixed", "canal"], p=[0.4, 0.2, 0.3, 0.1])
    sand_gain = rng.uniform(0.72, 1.15)
    tint = ("spoil", rng.uniform(0.0, 0.4))  # yellow-white to brownish sand
    water_mix = ("turbid_water", rng.uniform(0.0, 1.0))
    wet_frac = rng.uniform(0.2, 0.8)
    out: list[Feature] = []

    def sand(g: BaseGeometry, mat: str = "dry_sand") -> None:
        out.append(Feature(g, mat, site_id, gain=sand_gain * rng.uniform(0.92, 1.08), mix=tint))

    def water(g: BaseGeometry) -> None:
        out.append(Feature(g, "dark_water", site_id, gain=rng.uniform(0.8, 1.2), mix=water_mix))

    if rng.random() < 0.35:  # cleared, trampled ground around the pits
        out.append(Feature(blob(rng, cx, cy, radius * 1.15, 0.3), "disturbed", site_id, gain=rng.uniform(0.6, 1.0)))
    for _ in range(rng.integers(1, 4)):  # access tracks
        line = polyline(rng, cx, cy, rng.uniform(radius, radius + 400), n=3)
        out.append(Feature(line.buffer(rng.uniform(1.5, 3.0)), "track", site_id, gain=rng.uniform(0.8, 1.1)))
    if rng.random() < 0.3:  # older, partly revegetated pits inside the site (background)
        for _ in range(rng.integers(1, 6)):
            px, py = cx + rng.normal(0, radius / 2), cy + rng.normal(0, radius / 2)
            old = blob(rng, px, py, rng.uniform(4, 20))
            out.append(Feature(old, "revegetated", site_id, mix=("dry_sand", rng.uniform(0.1, 0.45))))
    n_pits = {"pockmarks": rng.integers(4, 40), "ponds": rng.integers(1, 6), "mixed": rng.integers(3, 20),
              "canal": rng.integers(1, 8)}[str(kind)]
    for _ in range(int(n_pits)):
        px, py = cx + rng.normal(0, radius / 2.2), cy + rng.normal(0, radius / 2.2)
        d = float(np.exp(rng.uniform(np.log(5), np.log(25 if kind == "pockmarks" else 60))))
        sand(blob(rng, px, py, d / 2 * rng.uniform(1.1, 1.7)))  # spoil ring
        if rng.random() < wet_frac:
            rw = d / 2 * rng.uniform(0.4, 0.8)
            sand(blob(rng, px, py, rw * 1.35), "wet_sand")
            water(blob(rng, px, py, rw))
    for _ in range(rng.integers(0, 8)):  # spoil mounds
        px, py = cx + rng.normal(0, radius / 2), cy + rng.normal(0, radius / 2)
        out.append(Feature(blob(rng, px, py, rng.uniform(3, 9)), "spoil", site_id, gain=rng.uniform(0.85, 1.15)))
    if kind in ("ponds", "mixed"):
        for _ in range(rng.integers(1, 4)):
            px, py = cx + rng.normal(0, radius / 3), cy + rng.normal(0, radius / 3)
            r = rng.uniform(8, 40) * size_scale
            sand(blob(rng, px, py, r + rng.uniform(4, 10), 0.35))
            sand(blob(rng, px, py, r + 2, 0.35), "wet_sand")
            water(blob(rng, px, py, r, 0.35))
    if kind == "canal":
        for _ in range(rng.integers(1, 3)):
            line = polyline(rng, cx + rng.normal(0, radius / 3), cy + rng.normal(0, radius / 3),
                            rng.uniform(60, 250) * size_scale, n=3, wiggle=0.3)
            w = rng.uniform(2, 6)
            sand(line.buffer(w + rng.uniform(3, 8)))
            water(line.buffer(w))
    return out


def site_extent(features: list[Feature]) -> BaseGeometry:
    return unary_union([f.geometry for f in features if f.label > 0])


# ----------------------------------------------------------------------------------------------- confusers
def make_negative(rng: np.random.Generator, kind: str, cx: float, cy: float, scene: Scene | None = None,
                  window: tuple[int, int, int, int] | None = None) -> list[Feature]:
    """Hard negatives that a brightness rule confuses with mining (all labelled background)."""
    out: list[Feature] = []

    def add(g: BaseGeometry, mat: str, gain: float = 1.0, mix: tuple[str, float] | None = None) -> None:
        out.append(Feature(g, mat, 0, kind, gain, mix))

    if kind == "bare_field":
        mat = "sandy_field" if rng.random() < 0.5 else "field_soil"
        add(rect(rng, cx, cy, rng.uniform(120, 700), rng.uniform(80, 400)), mat, rng.uniform(0.8, 1.25))
    elif kind == "sand_road":
        line = polyline(rng, cx, cy, rng.uniform(300, 1500), n=5, wiggle=0.25)
        add(line.buffer(rng.uniform(2, 4)), "dry_sand" if rng.random() < 0.5 else "track", rng.uniform(0.75, 1.1))
    elif kind == "beach" and scene is not None and window is not None:
        g = _beach(rng, scene, window)
        if g is not None:
            add(g, "dry_sand", rng.uniform(0.8, 1.15))
            inner = g.buffer(-2.0)
            if not inner.is_empty and rng.random() < 0.5:
                add(inner, "wet_sand", rng.uniform(0.9, 1.1))
    elif kind == "clear_cut":
        add(rect(rng, cx, cy, rng.uniform(80, 400), rng.uniform(60, 250)), "clear_cut", rng.uniform(0.85, 1.3),
            ("field_soil", rng.uniform(0, 0.5)))
    elif kind == "village":
        road = polyline(rng, cx, cy, rng.uniform(200, 700), n=3, wiggle=0.2)
        add(road.buffer(rng.uniform(2.5, 4)), "asphalt", rng.uniform(0.9, 1.2))
        for _ in range(rng.integers(15, 60)):
            p = road.interpolate(rng.uniform(0, road.length))
            side = rng.choice([-1, 1]) * rng.uniform(10, 25)
            ang = rng.uniform(0, 2 * np.pi)
            hx, hy = p.x + side * np.cos(ang), p.y + side * np.sin(ang)
            add(rect(rng, hx + np.cos(ang) * 15, hy + np.sin(ang) * 15, rng.uniform(15, 30), rng.uniform(20, 40)),
                "grass", rng.uniform(0.6, 1.0), ("field_soil", rng.uniform(0, 0.6)))
            roof = str(rng.choice(["roof_red", "roof_grey", "roof_grey", "limestone"]))
            add(rect(rng, hx, hy, rng.uniform(7, 14), rng.uniform(7, 12)), roof, rng.uniform(0.8, 1.15))
    elif kind == "quarry":
        w, h = rng.uniform(250, 900), rng.uniform(200, 600)
        mat = "dry_sand" if rng.random() < 0.6 else "limestone"
        q = rect(rng, cx, cy, w, h)
        add(q, mat, rng.uniform(0.85, 1.2))
        if rng.random() < 0.5:
            add(affinity.scale(q, 0.45, 0.45), "dark_water", 1.0, ("turbid_water", rng.uniform(0.3, 1)))
    elif kind == "old_site":  # abandoned mining, revegetated: background
        for f in make_site(rng, cx, cy, site_id=1):
            add(f.geometry, "revegetated", rng.uniform(0.85, 1.1), ("dry_sand", rng.uniform(0.05, 0.4)))
    return out


def _beach(rng: np.random.Generator, scene: Scene, window: tuple[int, int, int, int]) -> BaseGeometry | None:
    """A sand strip along the shore of a real lake inside the window."""
    r0, c0, h, w = window
    water = scene.water[r0:r0 + h, c0:c0 + w]
    shore = binary_dilation(water, iterations=2) & ~water
    ys, xs = np.nonzero(shore)
    if len(ys) < 20:
        return None
    i = rng.integers(len(ys))
    t = scene.transform
    x, y = t * (c0 + xs[i] + 0.5, r0 + ys[i] + 0.5)
    near = Point(x, y).buffer(rng.uniform(40, 200))
    strip = binary_dilation(water, iterations=int(rng.integers(1, 3))) & ~water
    shapes = [Polygon(s["coordinates"][0]) for s, v in rasterio.features.shapes(
        strip.astype(np.uint8), mask=strip, transform=t * Affine.translation(c0, r0)) if v == 1]
    if not shapes:
        return None
    g = unary_union(shapes).intersection(near)
    return None if g.is_empty else g


def make_clouds(rng: np.random.Generator, shape: tuple[int, int], res: float) -> Clouds:
    """Smooth fractal cloud opacity (thin to opaque, with soft edges) and a displaced shadow."""
    h, w = shape
    sigma = rng.uniform(150, 600) / res
    noise = gaussian_filter(rng.normal(size=(h, w)), sigma) + 0.4 * gaussian_filter(rng.normal(size=(h, w)), sigma / 4)
    noise = (noise - noise.mean()) / (noise.std() + 1e-9)
    thr = rng.uniform(-0.2, 1.2)
    alpha = np.clip((noise - thr) * rng.uniform(0.5, 3.0), 0, 1) * rng.uniform(0.25, 1.0)
    shadow = np.zeros_like(alpha)
    if rng.random() < 0.7:
        dy, dx = rng.uniform(-1, 1, 2) * rng.uniform(100, 600) / res
        shadow = np.clip(shift(alpha, (dy, dx), order=1, mode="constant"), 0, 1) * rng.uniform(0.3, 0.8)
    return Clouds(alpha.astype(np.float32), shadow.astype(np.float32), rng.uniform(0.6, 1.2))


# ----------------------------------------------------------------------------------------------- rendering
def _feature_fractions(ids: np.ndarray, k: int, n: int) -> np.ndarray:
    """Area fraction of each feature id (0 = background) in every k x k block: [H/k, W/k, n] float32."""
    h, w = ids.shape
    bh, bw = h // k, w // k
    block = (np.arange(h)[:, None] // k) * bw + (np.arange(w)[None, :] // k)
    counts = np.bincount((block * n + ids).ravel(), minlength=bh * bw * n)
    return (counts.reshape(bh, bw, n) / float(k * k)).astype(np.float32)


def upsample_bilinear(a: np.ndarray, k: int) -> np.ndarray:
    """Bilinear upsampling by an integer factor with pixel-centre alignment and edge clamping (as GDAL bilinear)."""
    if k == 1:
        return a.astype(np.float32, copy=False)

    def axis_weights(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        u = (np.arange(size * k) + 0.5) / k - 0.5
        i0 = np.floor(u).astype(int)
        wt = (u - i0).astype(np.float32)
        return np.clip(i0, 0, size - 1), np.clip(i0 + 1, 0, size - 1), wt

    y0, y1, wy = axis_weights(a.shape[0])
    x0, x1, wx = axis_weights(a.shape[1])
    rows = a[y0] * (1 - wy[:, None]) + a[y1] * wy[:, None]
    return (rows[:, x0] * (1 - wx) + rows[:, x1] * wx).astype(np.float32)


def coarse_factor(scene: Scene) -> int:
    """Model-grid pixels per coarsest band pixel (6 for S2 60 m bands, 1 for Landsat)."""
    return int(round(max(b.res for b in scene.bands.values()) / scene.res))


def render(scene: Scene, window: tuple[int, int, int, int], features: list[Feature], clouds: Clouds | None = None,
           bands: tuple[str, ...] | None = None, paths: dict[str, float] | None = None) -> Rendered:
    """Render features (and clouds) into the scene window (row0, col0, h, w) on the model grid.

    row0/col0/h/w must be multiples of :func:`coarse_factor`.  Returns the model-grid stack of ``bands``
    (default: the family's model bands) and truth rasters.
    """
    r0, c0, h, w = window
    k = coarse_factor(scene)
    if any(v % k for v in window):
        raise ValueError(f"window {window} must be aligned to multiples of {k}")
    bands = bands or scene.model_bands
    paths = paths or spectra.cached_path_reflectance(scene)
    # extended window (one coarse pixel of margin, clipped to the scene) for bilinear resampling at the edges
    er0, ec0 = max(0, r0 - k), max(0, c0 - k)
    er1, ec1 = min(scene.shape[0], r0 + h + k), min(scene.shape[1], c0 + w + k)
    eh, ew = er1 - er0, ec1 - ec0
    f = int(round(scene.res / HR))
    ox, oy = scene.transform * (ec0, er0)
    hr_transform = Affine(HR, 0, ox, 0, -HR, oy)
    ids = np.zeros((eh * f, ew * f), np.int32)
    shapes = [(ft.geometry, i + 1) for i, ft in enumerate(features) if not ft.geometry.is_empty]
    if shapes:
        ids = rasterio.features.rasterize(shapes, out_shape=ids.shape, transform=hr_transform, dtype="int32")
    n = len(features) + 1
    lab_tab = np.array([0] + [ft.label for ft in features], np.uint8)
    site_tab = np.array([0] + [ft.site_id for ft in features], np.int32)
    neg_tab = np.array([False] + [bool(ft.negative) for ft in features])
    fractions: dict[int, np.ndarray] = {}  # block factor -> [blocks_y, blocks_x, n] area fraction of each feature

    def frac(kb: int) -> np.ndarray:
        if kb not in fractions:
            fractions[kb] = _feature_fractions(ids, kb, n)
        return fractions[kb]

    out_stack = []
    for name in bands:
        band = scene.bands[name]
        kb = int(round(band.res / HR))
        cf = int(round(band.res / scene.res))
        bg = band.data[er0 // cf: er1 // cf, ec0 // cf: ec1 // cf]
        if shapes and spectra.transmittance(band.wavelength) > 0:
            tab = np.array([0.0] + [spectra.toa(ft.reflectance(band.wavelength), paths[name], band.wavelength)
                                    for ft in features], np.float32)
            fr = frac(kb)
            mixed = bg * fr[..., 0] + fr @ tab
        else:
            mixed = bg
        grid = upsample_bilinear(mixed, cf)
        out_stack.append(grid[r0 - er0: r0 - er0 + h, c0 - ec0: c0 - ec0 + w])
    stack = np.stack(out_stack).astype(np.float32)

    def crop(a: np.ndarray) -> np.ndarray:
        return a[r0 - er0: r0 - er0 + h, c0 - ec0: c0 - ec0 + w]

    fr = frac(f)
    pit_f = crop(fr @ (lab_tab == 1).astype(np.float32))
    pond_f = crop(fr @ (lab_tab == 2).astype(np.float32))
    label = np.zeros((h, w), np.uint8)
    label[pit_f + pond_f >= 0.5] = 1
    label[pond_f >= 0.5] = 2
    touched = fr > 0
    site_ids = crop(np.where(touched & (lab_tab > 0), site_tab, 0).max(axis=-1))
    negative = crop((touched & neg_tab).any(axis=-1))
    cloud = np.zeros((h, w), bool) if scene.cloud is None else scene.cloud[r0:r0 + h, c0:c0 + w].copy()
    if clouds is not None:
        stack = apply_clouds(stack, [scene.bands[n] for n in bands], [paths[n] for n in bands], clouds)
        cloud |= (clouds.alpha > 0.1) | (clouds.shadow > 0.15)
    t = scene.transform * Affine.translation(c0, r0)
    return Rendered(stack, list(bands), label, site_ids, negative, cloud, t, features)


def render_tiled(scene: Scene, window: tuple[int, int, int, int], features: list[Feature],
                 clouds: Clouds | None = None, bands: tuple[str, ...] | None = None, tile: int = 192) -> Rendered:
    """:func:`render` of a large window in tiles (bounded memory); same result as one call."""
    r0, c0, h, w = window
    k = coarse_factor(scene)
    tile = max(k, tile // k * k)
    bands = bands or scene.model_bands
    stack = np.zeros((len(bands), h, w), np.float32)
    label = np.zeros((h, w), np.uint8)
    site_ids = np.zeros((h, w), np.int32)
    negative = np.zeros((h, w), bool)
    cloud = np.zeros((h, w), bool)
    t = scene.transform
    for tr in range(0, h, tile):
        for tc in range(0, w, tile):
            th, tw = min(tile, h - tr), min(tile, w - tc)
            x0, y1 = t * (c0 + tc - k, r0 + tr - k)
            x1, y0 = t * (c0 + tc + tw + k, r0 + tr + th + k)
            bb = box(x0, y0, x1, y1)
            sub = [ft for ft in features if ft.geometry.intersects(bb)]
            sub_clouds = None
            if clouds is not None:
                sl = (slice(tr, tr + th), slice(tc, tc + tw))
                sub_clouds = Clouds(clouds.alpha[sl], clouds.shadow[sl], clouds.brightness)
            part = render(scene, (r0 + tr, c0 + tc, th, tw), sub, sub_clouds, bands)
            sl2 = (slice(tr, tr + th), slice(tc, tc + tw))
            stack[(slice(None), *sl2)] = part.stack
            label[sl2], site_ids[sl2], negative[sl2], cloud[sl2] = part.label, part.site_ids, part.negative, part.cloud
    return Rendered(stack, list(bands), label, site_ids, negative, cloud,
                    scene.transform * Affine.translation(c0, r0), features)


def apply_clouds(stack: np.ndarray, bands: list[Band], paths: list[float], clouds: Clouds) -> np.ndarray:
    """Shadow darkens the surface part of the signal; cloud opacity blends towards cloud TOA reflectance."""
    out = np.empty_like(stack)
    for i, (band, path) in enumerate(zip(bands, paths, strict=True)):
        x = path + (stack[i] - path) * (1 - clouds.shadow)
        c = spectra.cloud_toa(band.wavelength) * clouds.brightness
        out[i] = (1 - clouds.alpha) * x + clouds.alpha * c
    return out


# ----------------------------------------------------------------------------------------------- scenarios
@dataclass
class Region:
    """A column range of the scene on the model grid (spatial split)."""

    name: str
    col0: int
    col1: int


def split_regions(scene: Scene) -> dict[str, Region]:
    """West 60 % train, next 20 % validation, east 20 % test (aligned to the coarsest band)."""
    k = coarse_factor(scene)
    w = scene.shape[1]
    a, b = int(0.6 * w) // k * k, int(0.8 * w) // k * k
    return {"train": Region("train", 0, a), "val": Region("val", a, b), "test": Region("test", b, w // k * k)}


def populate(rng: np.random.Generator, scene: Scene, window: tuple[int, int, int, int], n_sites: int,
             n_negatives: int, first_site_id: int = 1, size_scale: float = 1.0,
             negative_kinds: tuple[str, ...] = NEGATIVE_KINDS) -> list[Feature]:
    """Random sites (on land, apart) and confusers (not overlapping sites) inside a window."""
    r0, c0, h, w = window
    t = scene.transform
    x0, y1 = t * (c0, r0)
    x1, y0 = t * (c0 + w, r0 + h)
    margin = min(60.0, (x1 - x0) / 4)
    water = scene.water
    feats: list[Feature] = []
    taken: list[BaseGeometry] = []
    sid = first_site_id
    tries = 0
    while sid < first_site_id + n_sites and tries < n_sites * 30:
        tries += 1
        cx, cy = rng.uniform(x0 + margin, x1 - margin), rng.uniform(y0 + margin, y1 - margin)
        col, row = ~t * (cx, cy)
        if water[int(row), int(col)] or any(g.distance(Point(cx, cy)) < 80 for g in taken):
            continue
        site = make_site(rng, cx, cy, sid, size_scale)
        ext = site_extent(site)
        if ext.is_empty or any(g.intersects(ext.buffer(40)) for g in taken):
            continue
        # keep the site inside the window/region so labels never cross a split border
        if not box(x0, y0, x1, y1).contains(ext):
            continue
        feats.extend(site)
        taken.append(ext)
        sid += 1
    negs: list[Feature] = []
    for _ in range(n_negatives):
        kind = str(rng.choice(negative_kinds))
        cx, cy = rng.uniform(x0, x1), rng.uniform(y0, y1)
        col, row = ~t * (cx, cy)
        if kind != "beach" and water[int(row), int(col)]:
            continue
        cand = make_negative(rng, kind, cx, cy, scene, window)
        if not cand:
            continue
        ext = unary_union([c.geometry for c in cand])
        if any(g.buffer(60).intersects(ext) for g in taken):
            continue
        for c in cand:
            c.group = len(negs) + 1
        negs.extend(cand)
    return negs + feats  # sites burnt last
