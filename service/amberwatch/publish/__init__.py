"""Publishing: the published runs and the monitoring data as WMS 1.3.0 / WFS 2.0 (MapServer, ``/ows``) and
OGC API Features (pygeoapi, ``/ogcapi``) layers ``mining_sites``, ``detections``, ``run_<id>``, ``events``,
``site_history``, ``oblasts``, ``raions``, ``hromadas`` and ``protected_areas``."""

from amberwatch.publish.service import OgcPaths, PublishState, mount, refresh

__all__ = ["OgcPaths", "PublishState", "mount", "refresh"]
