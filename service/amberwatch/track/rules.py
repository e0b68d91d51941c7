"""Site status, growth and disturbance rules: pure functions over a site's observation history.

See docs/monitoring.md for the rules in words. All areas are hectares (geodesic, :mod:`amberwatch.area`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

STATUSES = ("new", "active", "abandoned", "recovering")
DISTURBANCE_CLASSES = ("low", "moderate", "high", "severe")

FRESH_FRACTION = 0.25  # fresh sand: pit area >= 25 % of the site's peak pit area so far ...
MIN_GROWTH_HA = 0.05  # ... or pit area / cumulative footprint grew by at least this (= minimum mapping unit) ...
MIN_GROWTH_FRACTION = 0.05  # ... and by at least 5 % of what it was
RECOVERY_FRACTION = 0.5  # no fresh sand and the disturbed area left <= 50 % of its peak: recovering
DISTURBANCE_BUFFER_M = 100.0  # envelope = convex hull of the cumulative footprint + 100 m
DISTURBANCE_THRESHOLDS = (0.10, 0.25, 0.50)  # score limits between low | moderate | high | severe
SECONDS_PER_YEAR = 365.25 * 86400


@dataclass
class Observation:
    """What one observation date saw of a site (areas of the union of that date's detections)."""

    observed_at: datetime
    run_id: int
    detected: bool
    area_ha: float
    pit_area_ha: float
    pond_area_ha: float
    cumulative_area_ha: float  # footprint of everything detected up to and including this date
    status: str = "new"
    # Sentinel-1 evidence on a date Sentinel-2 did not observe the site (cloud): hectares of the site's envelope where
    # ponds appeared or disappeared or bare ground changed (measured in PostGIS on the stored change polygons:
    # store.queries.sar.evidence_in_each). None = an optical observation.
    sar_change_ha: float | None = None


def _grew(now: float, before: float) -> bool:
    return now - before >= max(MIN_GROWTH_HA, MIN_GROWTH_FRACTION * before)


def assign_statuses(history: list[Observation]) -> None:
    """Set ``status`` on each observation (sorted by date, starting at the first detection).

    - ``new``: the first observation where the site is detected;
    - ``active``: detected again with fresh sand (pit area >= FRESH_FRACTION of its peak, or pits grew) or the
      cumulative footprint grew (new ground dug, pits or ponds);
    - ``abandoned``: detected, no fresh sand and no growth, but more than RECOVERY_FRACTION of the peak disturbed
      area still bare or flooded;
    - ``recovering``: nothing detected any more, or the disturbed area shrank to <= RECOVERY_FRACTION of its peak
      (vegetation returning); a recovering site stays recovering until fresh digging makes it active again.
    """
    peak_pit = peak_area = 0.0
    prev: Observation | None = None
    last_status = "new"
    for obs in history:
        if obs.sar_change_ha is not None:
            if prev is None:
                raise ValueError("a site history starts at its first (optical) detection")
            obs.status = last_status = sar_status(last_status, obs.sar_change_ha)
            continue  # radar evidence does not move the optical peaks nor the optical reference ``prev``
        if prev is None:
            if not obs.detected:
                raise ValueError("a site history starts at its first detection")
            obs.status = "new"
        else:
            fresh = obs.pit_area_ha > 0 and (
                obs.pit_area_ha >= FRESH_FRACTION * peak_pit or _grew(obs.pit_area_ha, prev.pit_area_ha)
            )
            growing = _grew(obs.cumulative_area_ha, prev.cumulative_area_ha)
            if obs.detected and (growing or (fresh and prev.status in ("new", "active"))):
                obs.status = "active"
            elif obs.detected and fresh and _grew(obs.pit_area_ha, prev.pit_area_ha):
                obs.status = "active"  # digging resumed on an abandoned/recovering site
            elif not obs.detected or obs.area_ha <= RECOVERY_FRACTION * max(peak_area, obs.area_ha):
                obs.status = "recovering"
            elif prev.status == "recovering":
                obs.status = "recovering"
            else:
                obs.status = "abandoned"
        peak_pit = max(peak_pit, obs.pit_area_ha)
        peak_area = max(peak_area, obs.area_ha)
        prev = obs
        last_status = obs.status


def sar_status(previous: str, sar_change_ha: float) -> str:
    """Status after a Sentinel-1 observation on a date when Sentinel-2 was cloudy over the site.

    Ponds appearing or disappearing, or bare-ground change (backscatter log-ratio beyond the pair's threshold),
    over at least MIN_GROWTH_HA of the site's envelope is evidence of work on the site: ``active``. Less than that
    keeps the previous status: radar cannot tell fresh sand from regrowing vegetation, so it never makes a site
    ``abandoned`` or ``recovering``, and a quiet radar date is not "nothing there".
    """
    return "active" if sar_change_ha >= MIN_GROWTH_HA else previous


def growth_rate(history: list[Observation]) -> float | None:
    """Least-squares slope of the cumulative disturbed area over time (ha/year); None with < 2 dates."""
    pts = [(o.observed_at.timestamp() / SECONDS_PER_YEAR, o.cumulative_area_ha) for o in history]
    if len(pts) < 2:
        return None
    mx = sum(p[0] for p in pts) / len(pts)
    my = sum(p[1] for p in pts) / len(pts)
    sxx = sum((p[0] - mx) ** 2 for p in pts)
    if sxx <= 0:
        return None
    return sum((p[0] - mx) * (p[1] - my) for p in pts) / sxx


def disturbance(cumulative_ha: float, pond_ha: float, envelope_ha: float) -> tuple[float, str]:
    """Degree of disturbance from the fractions of the site envelope that lost vegetation and hold water.

    score = (cumulative disturbed area + current pond area) / envelope area, so open water counts twice
    (flooded pits persist for decades); classes: low < 0.10 <= moderate < 0.25 <= high < 0.50 <= severe.
    """
    if envelope_ha <= 0:
        return 0.0, "low"
    score = min(1.0, (cumulative_ha + pond_ha) / envelope_ha)
    for limit, cls in zip(DISTURBANCE_THRESHOLDS, DISTURBANCE_CLASSES, strict=False):
        if score < limit:
            return score, cls
    return score, DISTURBANCE_CLASSES[-1]
