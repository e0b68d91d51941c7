"""How many sample points each stratum gets (Olofsson et al. 2014, section 5.1.2).

The paper's advice for a map with rare classes: give each rare stratum a fixed number of points (50-100), enough
to estimate its user's accuracy, and share the rest of the sample in proportion to area. Here a stratum is rare
when its proportional share would fall below ``minimum``; it then gets ``minimum`` points, the remainder is
shared again among the other strata in proportion to their area, and this repeats until no share falls below the
minimum. Strata of zero area get no points. Shares are rounded to integers by largest remainder, so the sizes
always add up to ``n_total``.
"""

from __future__ import annotations

from collections.abc import Sequence

from amberwatch.errors import InputError

MIN_PER_STRATUM = 2  # a stratum's variance needs at least two sample units (n_h - 1 in the denominator)


def _largest_remainder(shares: dict[int, float], total: int) -> dict[int, int]:
    floors = {i: int(s) for i, s in shares.items()}
    left = total - sum(floors.values())
    for i in sorted(shares, key=lambda i: (-(shares[i] - floors[i]), i))[:left]:
        floors[i] += 1
    return floors


def allocate(areas: Sequence[float], n_total: int, minimum: int = 50) -> list[int]:
    """Sample size per stratum: ``minimum`` for rare strata, the rest proportional to ``areas`` (see module doc)."""
    if minimum < MIN_PER_STRATUM:
        raise InputError(f"the minimum per stratum must be at least {MIN_PER_STRATUM} (got {minimum})")
    if any(a < 0 for a in areas):
        raise InputError("stratum areas must not be negative")
    present = [i for i, a in enumerate(areas) if a > 0]
    if not present:
        raise InputError("every stratum is empty: there is no area to sample")
    if n_total < minimum * len(present):
        raise InputError(f"a sample of {n_total} is too small for {len(present)} strata with at least {minimum} "
                         f"points each: use at least {minimum * len(present)} or a smaller minimum")
    fixed: set[int] = set()
    while True:
        free = [i for i in present if i not in fixed]
        rest = n_total - minimum * len(fixed)
        free_area = sum(areas[i] for i in free)
        shares = {i: rest * areas[i] / free_area for i in free}
        rare = {i for i, s in shares.items() if s < minimum}
        if not rare:
            break
        fixed |= rare
        if len(fixed) == len(present):
            shares = {}
            break
    sizes = dict.fromkeys(range(len(areas)), 0)
    sizes.update(dict.fromkeys(fixed, minimum))
    if shares:
        sizes.update(_largest_remainder(shares, n_total - minimum * len(fixed)))
    else:  # every stratum is rare: share what is above the minima in proportion to area
        extra = _largest_remainder({i: (n_total - minimum * len(present)) * areas[i] / sum(areas) for i in present},
                                   n_total - minimum * len(present))
        for i in present:
            sizes[i] = minimum + extra[i]
    return [sizes[i] for i in range(len(areas))]
