"""Publishing: the published runs as WMS 1.3.0 / WFS 2.0 (MapServer, ``/ows``) and OGC API Features
(pygeoapi, ``/ogcapi``) layers ``mining_sites``, ``detections`` and ``run_<id>``."""

from amberwatch.publish.service import OgcPaths, PublishState, mount, refresh

__all__ = ["OgcPaths", "PublishState", "mount", "refresh"]
