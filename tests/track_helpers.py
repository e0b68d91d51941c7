"""Site tracking on a real PostGIS, shared by the optical (test_track) and radar (test_sentinel1_track) tests: metric
squares around an origin in the amber belt, and the publishing of a run as pipeline.publish_result does it."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

from geoalchemy2.shape import from_shape
from shapely.geometry import MultiPolygon, Point, box

from amberwatch.detect.clearsky import clear_sky_footprint
from amberwatch.store.db import Store
from amberwatch.store.models import Detection, Run, Scene
from amberwatch.track import update_sites
from amberwatch.track.geo import to_metric, to_wgs84

ORIGIN = (26.55, 51.72)  # Vysotska hromada, Rivne oblast (the amber belt); pre-2020 raion Dubrovytsia
_keys = itertools.count()


def rect(dx_m: float, dy_m: float, w_m: float, h_m: float, origin: tuple[float, float] = ORIGIN):
    """A w x h metre rectangle whose south-west corner is (dx, dy) metres from ``origin``, in EPSG:4326."""
    o = to_metric(Point(origin))
    return to_wgs84(box(o.x + dx_m, o.y + dy_m, o.x + dx_m + w_m, o.y + dy_m + h_m))


def square(dx_m: float, dy_m: float, side_m: float, origin: tuple[float, float] = ORIGIN):
    return rect(dx_m, dy_m, side_m, side_m, origin)


FOOTPRINT = box(ORIGIN[0] - 0.2, ORIGIN[1] - 0.1, ORIGIN[0] + 0.2, ORIGIN[1] + 0.1)


def publish(db: Store, when: datetime, polys: list[tuple[str, object]], footprint=FOOTPRINT,
            cloud_mask: Path | None = None, clear_sky=None) -> tuple[int, list[tuple]]:
    """What pipeline.publish_result does: insert a scene, a run and its detections, update sites, publish. The run's
    clear sky is computed from ``cloud_mask`` as the detect stage does, or given as ``clear_sky`` (EPSG:4326)."""
    with db.session() as s:
        scene = Scene(scene_key=f"TEST_{when:%Y%m%d}_{next(_keys)}", sensor="sentinel2a", family="sentinel2",
                      level="L2A", acquired=when, resolution=10.0, crs="EPSG:32635", bands=["red"],
                      cloud_fraction=0.0, footprint=from_shape(MultiPolygon([footprint]), srid=4326), source="test",
                      reflectance_path="/nonexistent.tif", cloud_mask_path=str(cloud_mask) if cloud_mask else None,
                      stac_item={})
        run = Run(state="running", parameters={}, progress=0.0, n_detections=len(polys))
        run.scenes = [scene]
        s.add(run)
        s.flush()
        for cls, geom in polys:
            s.add(Detection(run_id=run.id, scene_id=scene.id, cls=cls, confidence=0.9,
                            area_ha=float(to_metric(geom).area / 1e4), observed_at=when,
                            geom=from_shape(MultiPolygon([geom]), srid=4326)))
        s.flush()
        events = update_sites(s, run.id, clear_sky_footprint(cloud_mask) if cloud_mask else clear_sky)
        run.state = "published"
        return run.id, [(e.site_id, e.observed_at, e.from_status, e.to_status) for e in events]
