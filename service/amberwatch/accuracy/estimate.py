"""Stratified estimators of the error matrix, accuracies and class areas (Olofsson et al. 2014, section 4-5).

Each stratum lies inside one map class (here: mining or not mining inside one oblast); when every map class is
one stratum, the formulas below are exactly the paper's:

* error matrix in area proportions: p̂_ij = Σ_h W_h n_hij / n_h (eq. 4 when strata are the map classes:
  W_i n_ij / n_i·), W_h = stratum area / total area;
* overall accuracy Ô = Σ_i p̂_ii, user's Û_i = p̂_ii / p̂_i·, producer's P̂_j = p̂_jj / p̂_·j (eqs. 1-3);
* area of class j: Â_j = A · p̂_·j (eq. 9), SE(p̂_·j) = sqrt(Σ_h W_h² p_hj (1 - p_hj) / (n_h - 1)) (eq. 10),
  SE(Â_j) = A · SE(p̂_·j) (eq. 11);
* variances of Ô, Û_i and P̂_j are those of Stehman (2014) for strata that refine the map classes, which reduce to
  the paper's eqs. 5, 6 and 7 when strata are the map classes;
* 95% confidence interval: estimate ± 1.96 SE.

The finite population correction is ignored (the paper does too: the population is millions of pixels).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import numpy as np

from amberwatch.errors import InputError

Z95 = 1.96


@dataclass(frozen=True)
class Stratum:
    """A stratum: its name, the map class everything in it has, and its area (any unit; the report uses ha)."""

    name: str
    map_class: str
    area: float


@dataclass(frozen=True)
class Interval:
    """An estimate with its standard error and its 95% confidence interval (estimate ± 1.96 SE)."""

    estimate: float
    se: float
    low: float
    high: float

    @classmethod
    def of(cls, estimate: float, se: float, z: float = Z95) -> Interval:
        return cls(float(estimate), float(se), float(estimate - z * se), float(estimate + z * se))


@dataclass(frozen=True)
class ClassResult:
    name: str
    mapped_area: float  # area the map gives the class
    n: int  # sample units in the class's strata with a reference answer
    users: Interval | None  # None when the class has no sample units (nothing to estimate)
    producers: Interval | None  # None when no sample unit has this reference class
    area_proportion: Interval
    area: Interval  # area-adjusted (stratified) estimate


@dataclass(frozen=True)
class AccuracyEstimate:
    classes: list[str]
    strata: list[dict]  # name, map_class, area, weight, n, counts (by reference class)
    total_area: float
    counts: list[list[int]]  # error matrix in sample counts: rows = map class, columns = reference class
    proportions: list[list[float]]  # error matrix in estimated area proportions p̂_ij
    overall: Interval
    per_class: list[ClassResult]

    def to_dict(self) -> dict:
        return asdict(self)


def _check(classes: Sequence[str], strata: Sequence[Stratum], counts: np.ndarray) -> None:
    if len(set(classes)) != len(classes) or len(classes) < 2:
        raise InputError("give at least two distinct classes")
    if counts.shape != (len(strata), len(classes)):
        raise InputError(f"counts must be strata × classes ({len(strata)} × {len(classes)}), got {counts.shape}")
    if (counts < 0).any():
        raise InputError("counts must not be negative")
    for s in strata:
        if s.map_class not in classes:
            raise InputError(f"stratum {s.name!r}: map class {s.map_class!r} is not one of {list(classes)}")
        if s.area < 0:
            raise InputError(f"stratum {s.name!r}: negative area")
    short = [f"{s.name} ({int(n)})" for s, n in zip(strata, counts.sum(axis=1), strict=True) if s.area > 0 and n < 2]
    if short:
        raise InputError("every stratum needs at least 2 sample units with a reference answer; too few in: "
                         + ", ".join(short))


def _ratio_se(y_var: np.ndarray, weights: np.ndarray, x_total: float) -> float:
    """SE of a ratio estimator R̂ = Ŷ / X̂ from the per-stratum terms W_h² (s²_y + R̂² s²_x - 2 R̂ s_xy) / n_h."""
    return float(np.sqrt(np.sum(weights**2 * y_var)) / x_total)


def estimate(classes: Sequence[str], strata: Sequence[Stratum], counts: Sequence[Sequence[int]] | np.ndarray,
             z: float = Z95) -> AccuracyEstimate:
    """Estimate accuracies and areas from ``counts[h][j]`` = sample units of stratum h whose reference class is
    ``classes[j]``."""
    c = np.asarray(counts, dtype=np.float64)
    _check(classes, strata, c)
    k = len(classes)
    area = np.array([s.area for s in strata], dtype=np.float64)
    total = float(area.sum())
    if total <= 0:
        raise InputError("the strata have no area")
    w = area / total
    n = c.sum(axis=1)
    sampled = n > 0
    p = np.divide(c, n[:, None], out=np.zeros_like(c), where=sampled[:, None])  # p_hj: share of reference j in h
    # s²_h / n_h of a 0/1 variable with proportion p_h in stratum h: p (1 - p) / (n_h - 1)
    n1 = np.where(n > 1, n - 1, 1.0)
    var_p = p * (1 - p) / n1[:, None]
    map_idx = np.array([list(classes).index(s.map_class) for s in strata])
    member = np.zeros((len(strata), k))
    member[np.arange(len(strata)), map_idx] = 1.0  # stratum h is in map class i

    pij = member.T @ (w[:, None] * p)  # p̂_ij = Σ_{h in i} W_h p_hj
    nij = member.T @ c
    col = pij.sum(axis=0)  # p̂_·j
    row = pij.sum(axis=1)  # p̂_i· = W_i (mapped proportion)

    correct = p[np.arange(len(strata)), map_idx]  # share of the stratum whose reference equals its map class
    overall = Interval.of(np.trace(pij), float(np.sqrt(np.sum(w**2 * correct * (1 - correct) / n1))), z)

    results = []
    for j, name in enumerate(classes):
        in_j = map_idx == j
        users = None
        if row[j] > 0 and n[in_j].sum() > 0:
            u = pij[j, j] / row[j]
            users = Interval.of(u, _ratio_se(np.where(in_j, var_p[:, j], 0.0), w, row[j]), z)
        producers = None
        if col[j] > 0:
            r = pij[j, j] / col[j]
            # y = (map j and reference j), x = (reference j): inside map class j, y = x; elsewhere y = 0
            terms = var_p[:, j] * np.where(in_j, (1 - r) ** 2, r**2)
            producers = Interval.of(r, _ratio_se(terms, w, col[j]), z)
        se_prop = float(np.sqrt(np.sum(w**2 * var_p[:, j])))
        results.append(ClassResult(
            name=name, mapped_area=float(area[in_j].sum()), n=int(n[in_j].sum()), users=users, producers=producers,
            area_proportion=Interval.of(col[j], se_prop, z), area=Interval.of(total * col[j], total * se_prop, z)))

    strata_out = [{"name": s.name, "map_class": s.map_class, "area": s.area, "weight": float(w[h]),
                   "n": int(n[h]), "counts": {cl: int(c[h, j]) for j, cl in enumerate(classes)}}
                  for h, s in enumerate(strata)]
    return AccuracyEstimate(classes=list(classes), strata=strata_out, total_area=total,
                            counts=nij.astype(int).tolist(), proportions=pij.tolist(), overall=overall,
                            per_class=results)
