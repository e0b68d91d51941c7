"""Accuracy assessment (docs/accuracy.md): the Olofsson et al. (2014) estimators against the paper's own example
and a hand-computed one, the allocation rule, and design → reference answers → report through the real PostGIS,
the API and the stats page."""

from __future__ import annotations

import math

import numpy as np
import pytest

from amberwatch.accuracy.allocation import allocate
from amberwatch.accuracy.estimate import Stratum, estimate
from amberwatch.errors import InputError

# -- Olofsson et al. 2014, section 5 (Tables 8-9, sections 5.2.1-5.2.2) -----------------------------------------
# Strata = map classes; mapped areas in 30 m pixels (0.09 ha); rows = map class, columns = reference class.
PAPER_CLASSES = ["deforestation", "forest_gain", "stable_forest", "stable_non_forest"]
PAPER_PIXELS = [200_000, 150_000, 3_200_000, 6_450_000]
PAPER_COUNTS = [[66, 0, 5, 4], [0, 55, 8, 12], [1, 0, 153, 11], [2, 1, 9, 313]]
# Table 9: the error matrix in estimated area proportions, to 4 decimals
PAPER_PROPORTIONS = [[0.0176, 0, 0.0013, 0.0011], [0, 0.0110, 0.0016, 0.0024],
                     [0.0019, 0, 0.2967, 0.0213], [0.0040, 0.0020, 0.0179, 0.6212]]
# section 5.2.1: accuracy ± 95% half-width, to 2 decimals (the paper prints 0.23 and 0.01 for the producer's
# half-widths of forest gain and stable non-forest; its own eq. 7 gives 0.254 and 0.018 — docs/accuracy.md)
PAPER_USERS = [(0.88, 0.07), (0.73, 0.10), (0.93, 0.04), (0.96, 0.02)]
PAPER_PRODUCERS = [(0.75, 0.21), (0.85, 0.25), (0.93, 0.03), (0.96, 0.02)]
PAPER_OVERALL = (0.95, 0.02)
# section 5.2.2: area-adjusted estimates ± 95% half-width, in ha
PAPER_AREAS = [(21_158, 6_158), (11_686, 3_756), (285_770, 15_510), (581_386, 16_282)]


def paper_estimate():
    strata = [Stratum(c, c, px * 0.09) for c, px in zip(PAPER_CLASSES, PAPER_PIXELS, strict=True)]
    return estimate(PAPER_CLASSES, strata, PAPER_COUNTS)


def half(interval) -> float:
    return (interval.high - interval.low) / 2


def test_reproduces_the_papers_numerical_example() -> None:
    est = paper_estimate()
    assert est.counts == PAPER_COUNTS
    assert np.round(est.proportions, 4).tolist() == PAPER_PROPORTIONS
    assert est.total_area == pytest.approx(900_000)
    assert (round(est.overall.estimate, 2), round(half(est.overall), 2)) == PAPER_OVERALL
    for c, (u, uh), (p, ph), (a, ah) in zip(est.per_class, PAPER_USERS, PAPER_PRODUCERS, PAPER_AREAS, strict=True):
        assert (round(c.users.estimate, 2), round(half(c.users), 2)) == (u, uh), c.name
        assert (round(c.producers.estimate, 2), round(half(c.producers), 2)) == (p, ph), c.name
        assert (round(c.area.estimate), round(half(c.area))) == (a, ah), c.name
    # the areas add up to the map's total; the mapped areas are W_i × A
    assert sum(c.area.estimate for c in est.per_class) == pytest.approx(900_000)
    assert [c.mapped_area for c in est.per_class] == pytest.approx([18_000, 13_500, 288_000, 580_500])


# -- the worked example of docs/accuracy.md, every number by hand ---------------------------------------------
# Two oblasts, each split into mining / not mining; 1,000 ha of mapped mining in 100,000 ha.
DOC_STRATA = [Stratum("A / mining", "mining", 600.0), Stratum("A / not_mining", "not_mining", 59_400.0),
              Stratum("B / mining", "mining", 400.0), Stratum("B / not_mining", "not_mining", 39_600.0)]
DOC_COUNTS = [[45, 5], [2, 98], [40, 10], [0, 100]]  # [reference mining, reference not mining] per stratum


def test_reproduces_the_hand_computed_example_of_the_docs() -> None:
    est = estimate(["mining", "not_mining"], DOC_STRATA, DOC_COUNTS)
    assert est.counts == [[85, 15], [2, 198]]
    # p̂_11 = .006 × 45/50 + .004 × 40/50 = .0054 + .0032; p̂_12 = .006 × 5/50 + .004 × 10/50 = .0006 + .0008
    # p̂_21 = .594 × 2/100 = .01188; p̂_22 = .594 × 98/100 + .396 = .58212 + .396
    assert np.asarray(est.proportions) == pytest.approx(np.array([[0.0086, 0.0014], [0.01188, 0.97812]]))
    mining, other = est.per_class
    assert mining.users.estimate == pytest.approx(0.86)
    assert mining.producers.estimate == pytest.approx(0.0086 / 0.02048)  # 0.41992
    assert est.overall.estimate == pytest.approx(0.98672)
    # area: 100,000 × .02048 = 2,048 ha; V(p̂_·1) = .006²·.9·.1/49 + .594²·.02·.98/99 + .004²·.8·.2/49
    var = 0.006**2 * 0.09 / 49 + 0.594**2 * 0.0196 / 99 + 0.004**2 * 0.16 / 49
    assert var == pytest.approx(6.99728e-5, rel=1e-5)
    assert mining.area.estimate == pytest.approx(2048.0)
    assert mining.area.se == pytest.approx(836.50, abs=0.01)  # 100,000 × √V
    assert (mining.area.low, mining.area.high) == pytest.approx((408.47, 3687.53), abs=0.01)  # ± 1.96 SE
    # user's accuracy of mining: X̂ = .01; V = (.006²·.9·.1/49 + .004²·.8·.2/49) / .01²
    assert mining.users.se == pytest.approx(math.sqrt((0.006**2 * 0.09 / 49 + 0.004**2 * 0.16 / 49) / 0.01**2))
    assert mining.users.se == pytest.approx(0.03440, abs=1e-5)
    # producer's accuracy of mining: P̂ = .41992; V = [(.006²·.9·.1/49 + .004²·.8·.2/49)(1 - P̂)² +
    # .594²·.02·.98/99 · P̂²] / .02048²
    assert mining.producers.se == pytest.approx(0.17165, abs=1e-5)
    # overall: the same terms as the area (with two classes a wrong point is a wrong point either way)
    assert est.overall.se == pytest.approx(0.0083650, abs=1e-7)
    assert other.area.estimate == pytest.approx(97_952.0)
    assert other.area.se == pytest.approx(mining.area.se)  # two classes: the same uncertainty either way


def test_estimate_refuses_bad_input() -> None:
    with pytest.raises(InputError, match="at least 2 sample units"):
        estimate(["mining", "not_mining"], DOC_STRATA, [[1, 0], [2, 98], [40, 10], [0, 100]])
    with pytest.raises(InputError, match="strata × classes"):
        estimate(["mining", "not_mining"], DOC_STRATA, [[1, 0]])
    with pytest.raises(InputError, match="map class 'x'"):
        estimate(["mining", "not_mining"], [Stratum("s", "x", 1.0)], [[1, 1]])


# -- allocation ---------------------------------------------------------------------------------------------------
def test_allocation_gives_rare_strata_the_minimum_and_the_rest_by_area() -> None:
    # proportional shares of 500 would be 3, 297, 2, 198: the two mining strata get 50 each, the 400 left go
    # 59,400 : 39,600 = 240 : 160
    assert allocate([600, 59_400, 400, 39_600], 500, minimum=50) == [50, 240, 50, 160]
    # nothing is rare: plain proportional allocation, rounded by largest remainder to add up exactly
    assert allocate([1, 1, 1], 100, minimum=10) == [34, 33, 33]
    # proportional shares of 60 would be 0.6, 18, 41.4: the first two get the minimum, the last the 20 left
    assert allocate([1, 30, 69], 60, minimum=20) == [20, 20, 20]
    assert allocate([0, 30, 70], 100, minimum=20) == [0, 30, 70]  # empty strata get nothing
    assert sum(allocate([3, 5, 7, 11, 13], 997, minimum=50)) == 997
    with pytest.raises(InputError, match="too small"):
        allocate([1, 2, 3], 100, minimum=50)
    with pytest.raises(InputError, match="at least 2"):
        allocate([1, 2], 100, minimum=1)
