"""What a Sentinel-1 change map says about one site: hectares of change inside the site's envelope.

The caller gives the envelope (in tracking: the site's cumulative footprint, convex hull buffered by
``track.rules.DISTURBANCE_BUFFER_M``, like the disturbance envelope). Its hectares of water appearing or
disappearing and of backscatter change become ``track.rules.Observation.sar_change_ha`` on a date Sentinel-2 was
cloudy (rule: ``track.rules.sar_status``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from rasterio.features import geometry_mask
from shapely.geometry.base import BaseGeometry

from amberwatch.ingest.plan import Grid
from amberwatch.ingest.rasters import ground_resolution
from amberwatch.sar.change import CHANGE_CLASSES, ChangeMap


@dataclass(frozen=True)
class SarEvidence:
    """Hectares of each kind of radar change inside a site's envelope on one date pair."""

    water_gain_ha: float
    water_loss_ha: float
    bare_change_ha: float  # backscatter decrease or increase beyond the pair's threshold
    observed_ha: float  # envelope hectares with valid radar pixels on both dates

    @property
    def change_ha(self) -> float:
        return self.water_gain_ha + self.water_loss_ha + self.bare_change_ha


def site_evidence(change: ChangeMap, grid: Grid, envelope: BaseGeometry) -> SarEvidence:
    """Radar change inside ``envelope`` (a geometry in ``grid.crs``, metric)."""
    inside = ~geometry_mask([envelope], out_shape=(grid.height, grid.width), transform=grid.transform,
                            all_touched=False)
    pixel_ha = ground_resolution(grid) ** 2 / 10_000.0
    classes = change.classes[inside]

    def ha(*names: str) -> float:
        return float(np.isin(classes, [CHANGE_CLASSES.index(n) for n in names]).sum()) * pixel_ha

    return SarEvidence(water_gain_ha=ha("water_appeared"), water_loss_ha=ha("water_disappeared"),
                       bare_change_ha=ha("decrease", "increase"),
                       observed_ha=float((classes != 255).sum()) * pixel_ha)
