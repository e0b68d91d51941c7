"""Hand-crafted colour and texture features of one RGB chip (numpy/skimage only; no pretrained network).

A chip is the bounding box of one SLIC superpixel at ~0.37 m/px (Texty's Bing tiles). The features describe
what separates amber-mining sand (clusters of bright, roundish pits with dark water-filled centres on a
green/brown background) from roads, fields, quarries, clear-cuts and settlements:

- colour: RGB, HSV and CIE-Lab channel statistics (mean, std, percentiles) and class-like pixel fractions
  (bright sand, green vegetation, dark water);
- texture: uniform LBP histograms at three radii, GLCM properties at three distances, gradient magnitude and
  orientation-spread statistics, Canny edge density at three scales, difference-of-Gaussian band energies;
- morphology of bright components: count per area, size, elongation, extent (pits are small and compact,
  roads are long and thin, quarries are one big blob).

The chip is used at its native resolution; chips larger than ``MAX_SIDE`` are downscaled (rare, keeps time bounded).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi
from skimage.color import rgb2gray, rgb2hsv, rgb2lab
from skimage.feature import canny, graycomatrix, graycoprops, local_binary_pattern
from skimage.transform import resize

FEATURE_VERSION = "2"
MAX_SIDE = 512
MIN_SIDE = 16
PERCENTILES = (5, 25, 50, 75, 95)
LBP_SCALES = ((8, 1.0), (8, 2.0), (16, 4.0))
GLCM_DISTANCES = (1, 3, 9)
GLCM_PROPS = ("contrast", "dissimilarity", "homogeneity", "energy", "correlation")
GLCM_LEVELS = 32
CANNY_SIGMAS = (1.0, 2.0, 4.0)
DOG_SIGMAS = (1.0, 2.0, 4.0, 8.0, 16.0)
BRIGHT_L = (60.0, 70.0)  # Lab lightness thresholds for "bright sand" components
RING_RADII = (3, 5, 8, 13)  # px at half resolution (~0.74 m): pit radius ~2-10 m
HALF_LBP = ((8, 1.0), (8, 2.0))


def _channel_names() -> list[str]:
    return ["r", "g", "b", "h", "s", "v", "lab_l", "lab_a", "lab_b"]


def feature_names() -> list[str]:
    """Names of the feature vector entries, in order."""
    names: list[str] = []
    for ch in _channel_names():
        names += [f"{ch}_mean", f"{ch}_std"] + [f"{ch}_p{p}" for p in PERCENTILES]
    names += ["hue_sin_mean", "hue_cos_mean", "exg_mean", "exg_std", "rg_ratio_mean", "gb_ratio_mean"]
    names += ["frac_bright60", "frac_bright70", "frac_bright80", "frac_sand", "frac_green", "frac_dark", "frac_water"]
    for p, r in LBP_SCALES:
        names += [f"lbp{p}_{r:g}_bin{i}" for i in range(p + 2)]
    for d in GLCM_DISTANCES:
        names += [f"glcm_d{d}_{prop}" for prop in GLCM_PROPS]
    names += ["grad_mean", "grad_std", "grad_p50", "grad_p90", "grad_p99", "orient_entropy", "orient_coherence"]
    names += [f"canny_s{s:g}_density" for s in CANNY_SIGMAS]
    names += [f"dog_s{s:g}_energy" for s in DOG_SIGMAS] + [f"dog_s{s:g}_bright_peaks" for s in DOG_SIGMAS[1:4]]
    for t in BRIGHT_L:
        names += [
            f"blob{t:g}_count_per_mpx", f"blob{t:g}_small_frac", f"blob{t:g}_largest_frac", f"blob{t:g}_area_med",
            f"blob{t:g}_ecc_mean", f"blob{t:g}_extent_mean", f"blob{t:g}_elongated_frac", f"blob{t:g}_dark_core",
        ]
    names += ["lab_l_local_std_mean"]
    for r in RING_RADII:
        names += [f"ring{r}_p95", f"ring{r}_frac", f"ring{r}_peaks", f"spot{r}_p95", f"spot{r}_peaks",
                  f"darkspot{r}_peaks"]
    for p, r in HALF_LBP:
        names += [f"half_lbp{p}_{r:g}_bin{i}" for i in range(p + 2)]
    names += [f"half_glcm_d{d}_{prop}" for d in (1, 4) for prop in GLCM_PROPS]
    names += ["half_grad_mean", "half_grad_std", "half_grad_p50", "half_grad_p90", "half_grad_p99",
              "half_orient_entropy", "half_orient_coherence"]
    return names


N_FEATURES = len(feature_names())


def _as_rgb_float(rgb: np.ndarray) -> np.ndarray:
    """uint8/float HxWx3(+alpha) -> float64 HxWx3 in 0..1, downscaled to at most MAX_SIDE."""
    a = np.asarray(rgb)
    if a.ndim != 3 or a.shape[2] not in (3, 4):
        raise ValueError(f"expected an RGB image of shape (H, W, 3), got shape {a.shape}")
    a = a[..., :3]
    if min(a.shape[:2]) < MIN_SIDE:
        raise ValueError(f"image is too small ({a.shape[1]}x{a.shape[0]} px); need at least {MIN_SIDE} px a side")
    if a.dtype == np.uint8:
        f = a.astype(np.float64) / 255.0
    else:
        f = a.astype(np.float64)
        if f.max() > 1.0:
            f = f / 255.0
    scale = MAX_SIDE / max(f.shape[:2])
    if scale < 1.0:
        shape = (max(MIN_SIDE, round(f.shape[0] * scale)), max(MIN_SIDE, round(f.shape[1] * scale)))
        f = resize(f, shape, order=1, anti_aliasing=True)
    return np.clip(f, 0.0, 1.0)


def _stats(x: np.ndarray) -> list[float]:
    return [float(x.mean()), float(x.std()), *np.percentile(x, PERCENTILES).tolist()]


def _lbp_hists(gray_u8: np.ndarray) -> list[float]:
    out: list[float] = []
    for p, r in LBP_SCALES:
        codes = local_binary_pattern(gray_u8, p, r, method="uniform")
        hist = np.bincount(codes.astype(np.int64).ravel(), minlength=p + 2)[: p + 2]
        out += (hist / max(1, hist.sum())).tolist()
    return out


def _glcm(gray: np.ndarray) -> list[float]:
    q = np.minimum((gray * GLCM_LEVELS).astype(np.uint8), GLCM_LEVELS - 1)
    angles = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    m = graycomatrix(q, distances=list(GLCM_DISTANCES), angles=angles, levels=GLCM_LEVELS, symmetric=True, normed=True)
    out: list[float] = []
    for i in range(len(GLCM_DISTANCES)):
        for prop in GLCM_PROPS:
            v = graycoprops(m[:, :, i : i + 1, :], prop)
            out.append(float(np.nan_to_num(v.mean())))
    return out


def _gradients(gray: np.ndarray) -> list[float]:
    gy = ndi.sobel(gray, axis=0)
    gx = ndi.sobel(gray, axis=1)
    mag = np.hypot(gx, gy)
    ang = np.arctan2(gy, gx)
    w = mag.ravel() + 1e-12
    # orientation spread: histogram of doubled angles weighted by magnitude (edges are undirected)
    hist, _ = np.histogram((2 * ang.ravel()) % (2 * np.pi), bins=18, range=(0, 2 * np.pi), weights=w)
    p = hist / hist.sum()
    entropy = float(-(p[p > 0] * np.log(p[p > 0])).sum() / np.log(18))
    coherence = float(np.abs((w * np.exp(2j * ang.ravel())).sum()) / w.sum())
    return [float(mag.mean()), float(mag.std()), *np.percentile(mag, (50, 90, 99)).tolist(), entropy, coherence]


def _dog(gray: np.ndarray) -> list[float]:
    blurred = [ndi.gaussian_filter(gray, s, truncate=3.0) for s in DOG_SIGMAS]
    blurred.append(ndi.gaussian_filter(gray, DOG_SIGMAS[-1] * 2, truncate=3.0))
    energies: list[float] = []
    peaks: list[float] = []
    area_mpx = gray.size / 1e6
    for i in range(len(DOG_SIGMAS)):
        d = blurred[i] - blurred[i + 1]
        energies.append(float(np.sqrt((d**2).mean())))
        if 1 <= i <= 3:
            s = DOG_SIGMAS[i]
            size = int(2 * s + 1)
            local_max = (d == ndi.maximum_filter(d, size=size)) & (d > 0.03)
            peaks.append(float(local_max.sum() / area_mpx / 1000.0))
    return energies + peaks


def _component_shapes(lab: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per component (labels 1..n): area, eccentricity (from second moments) and extent (area / bbox area)."""
    flat = lab.ravel()
    yy, xx = np.indices(lab.shape, dtype=np.float64)
    area = np.bincount(flat, minlength=n + 1)[1:].astype(np.float64)
    sx = np.bincount(flat, xx.ravel(), n + 1)[1:]
    sy = np.bincount(flat, yy.ravel(), n + 1)[1:]
    sxx = np.bincount(flat, (xx * xx).ravel(), n + 1)[1:]
    syy = np.bincount(flat, (yy * yy).ravel(), n + 1)[1:]
    sxy = np.bincount(flat, (xx * yy).ravel(), n + 1)[1:]
    mx, my = sx / area, sy / area
    cxx = sxx / area - mx**2 + 1 / 12
    cyy = syy / area - my**2 + 1 / 12
    cxy = sxy / area - mx * my
    root = np.sqrt(np.maximum(((cxx - cyy) / 2) ** 2 + cxy**2, 0))
    l1 = (cxx + cyy) / 2 + root
    l2 = np.maximum((cxx + cyy) / 2 - root, 0)
    ecc = np.sqrt(np.clip(1 - l2 / np.maximum(l1, 1e-12), 0, 1))
    boxes = ndi.find_objects(lab, max_label=n)
    box_area = np.array([(b[0].stop - b[0].start) * (b[1].stop - b[1].start) for b in boxes], dtype=np.float64)
    return area, ecc, area / box_area


def _bright_blobs(lab_l: np.ndarray, thresh: float) -> list[float]:
    mask = ndi.binary_opening(lab_l > thresh, iterations=1)
    lab, n = ndi.label(mask, structure=np.ones((3, 3)))
    area_mpx = lab_l.size / 1e6
    if n == 0:
        return [0.0] * 8
    areas, ecc, extent = _component_shapes(lab, n)
    total = areas.sum()
    small = (areas >= 20) & (areas <= 3000)  # ~3 m2 .. ~400 m2 at 0.37 m/px: single pits
    # dark core: bright ring around a darker centre (water-filled pit) -> holes inside bright components
    holes = ndi.label(ndi.binary_fill_holes(mask) & ~mask)[1]
    return [
        float(n / area_mpx / 1000.0),
        float(areas[small].sum() / total),
        float(areas.max() / lab_l.size),
        float(np.median(areas) / 1000.0),
        float(ecc.mean()),
        float(extent.mean()),
        float(areas[ecc > 0.95].sum() / total),
        float(holes / area_mpx / 1000.0),
    ]


def _disk(r: float) -> np.ndarray:
    yy, xx = np.mgrid[-int(np.ceil(r)) : int(np.ceil(r)) + 1, -int(np.ceil(r)) : int(np.ceil(r)) + 1]
    return (xx**2 + yy**2 <= r * r).astype(np.float64)


def _rings(L: np.ndarray) -> list[float]:
    """Pit detectors on Lab lightness at half resolution: for each radius r, centre disk (r) vs annulus (r..2r).

    ring = annulus - centre (bright sand ring around a dark, often water-filled, pit); spot = centre - annulus
    (a bright sand spot). Reported: 95th percentile, share of pixels with ring > 8, and the number of strong
    local maxima per 1000 px (ring/spot > 8 and the bright part > 55 L).
    """
    from scipy.signal import fftconvolve

    out: list[float] = []
    area = L.size / 1000.0
    pad = 2 * max(RING_RADII) + 1
    Lp = np.pad(L, pad, mode="reflect")
    for r in RING_RADII:
        inner = _disk(r)
        outer = _disk(2 * r)
        k = outer.shape[0]
        inner_full = np.zeros_like(outer)
        o = (k - inner.shape[0]) // 2
        inner_full[o : o + inner.shape[0], o : o + inner.shape[0]] = inner
        ann = outer - inner_full
        centre = fftconvolve(Lp, inner_full / inner_full.sum(), mode="same")[pad:-pad, pad:-pad]
        annulus = fftconvolve(Lp, ann / ann.sum(), mode="same")[pad:-pad, pad:-pad]
        ring = annulus - centre
        spot = -ring
        size = 2 * r + 1
        ring_peaks = (ring == ndi.maximum_filter(ring, size=size)) & (ring > 8) & (annulus > 55)
        spot_peaks = (spot == ndi.maximum_filter(spot, size=size)) & (spot > 8) & (centre > 55)
        dark_peaks = (ring == ndi.maximum_filter(ring, size=size)) & (ring > 8) & (centre < 40)
        out += [float(np.percentile(ring, 95)), float((ring > 8).mean()), float(ring_peaks.sum() / area),
                float(np.percentile(spot, 95)), float(spot_peaks.sum() / area), float(dark_peaks.sum() / area)]
    return out


def _half_resolution(f: np.ndarray, L: np.ndarray) -> list[float]:
    """Texture at half resolution (~0.74 m): larger pits and pit fields."""
    h, w = (f.shape[0] // 2) * 2, (f.shape[1] // 2) * 2
    half = f[:h, :w].reshape(h // 2, 2, w // 2, 2, 3).mean(axis=(1, 3))
    Lh = L[:h, :w].reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))
    gray = rgb2gray(half)
    gray_u8 = (gray * 255).astype(np.uint8)
    feats: list[float] = []
    for p, r in HALF_LBP:
        codes = local_binary_pattern(gray_u8, p, r, method="uniform")
        hist = np.bincount(codes.astype(np.int64).ravel(), minlength=p + 2)[: p + 2]
        feats += (hist / max(1, hist.sum())).tolist()
    q = np.minimum((gray * GLCM_LEVELS).astype(np.uint8), GLCM_LEVELS - 1)
    angles = [0.0, np.pi / 4, np.pi / 2, 3 * np.pi / 4]
    m = graycomatrix(q, distances=[1, 4], angles=angles, levels=GLCM_LEVELS, symmetric=True, normed=True)
    for i in range(2):
        for prop in GLCM_PROPS:
            feats.append(float(np.nan_to_num(graycoprops(m[:, :, i : i + 1, :], prop).mean())))
    feats += _gradients(gray)
    return _rings(Lh) + feats


def extract_features(rgb: np.ndarray) -> np.ndarray:
    """One RGB chip (H, W, 3) uint8 -> float32 feature vector of length ``N_FEATURES``."""
    f = _as_rgb_float(rgb)
    hsv = rgb2hsv(f)
    lab = rgb2lab(f)
    gray = rgb2gray(f)
    feats: list[float] = []
    chans = [f[..., 0], f[..., 1], f[..., 2], hsv[..., 0], hsv[..., 1], hsv[..., 2], lab[..., 0], lab[..., 1],
             lab[..., 2]]
    for c in chans:
        feats += _stats(c)
    hue = hsv[..., 0] * 2 * np.pi
    exg = 2 * f[..., 1] - f[..., 0] - f[..., 2]
    eps = 1e-3
    feats += [float(np.sin(hue).mean()), float(np.cos(hue).mean()), float(exg.mean()), float(exg.std()),
              float((f[..., 0] / (f[..., 1] + eps)).mean()), float((f[..., 1] / (f[..., 2] + eps)).mean())]
    L = lab[..., 0]
    sat = hsv[..., 1]
    feats += [
        float((L > 60).mean()), float((L > 70).mean()), float((L > 80).mean()),
        float(((L > 60) & (sat < 0.35)).mean()),
        float((exg > 0.05).mean()),
        float((L < 25).mean()),
        float(((L < 35) & (lab[..., 2] < 5)).mean()),
    ]
    gray_u8 = (gray * 255).astype(np.uint8)
    feats += _lbp_hists(gray_u8)
    feats += _glcm(gray)
    feats += _gradients(gray)
    feats += [float(canny(gray, sigma=s).mean()) for s in CANNY_SIGMAS]
    feats += _dog(gray)
    for t in BRIGHT_L:
        feats += _bright_blobs(L, t)
    local_std = np.sqrt(np.maximum(ndi.uniform_filter(L**2, 9) - ndi.uniform_filter(L, 9) ** 2, 0))
    feats.append(float(local_std.mean()))
    feats += _half_resolution(f, L)
    out = np.asarray(feats, dtype=np.float32)
    if out.shape[0] != N_FEATURES:  # pragma: no cover - guards edits that forget feature_names()
        raise RuntimeError(f"feature vector has {out.shape[0]} entries, names list {N_FEATURES}")
    return np.nan_to_num(out, nan=0.0, posinf=0.0, neginf=0.0)
