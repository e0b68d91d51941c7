"""Single-linkage clustering of detections into sites: pure geometry, no database.

Two geometries closer than or exactly at ``distance`` (in the units of their CRS: metres in the tracking CRS) belong
to one cluster, and so, transitively, does everything linked to them. This is ``ST_ClusterDBSCAN(eps := distance,
minpoints := 1)`` of PostGIS, which the tracking used before; labels are numbered in order of first appearance, as
DBSCAN numbers clusters over rows sorted by detection id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import shapely
from scipy.sparse import coo_matrix
from scipy.sparse.csgraph import connected_components
from shapely.geometry.base import BaseGeometry


def single_linkage(geoms: Sequence[BaseGeometry], distance: float) -> np.ndarray:
    """Cluster label (0, 1, ...) of each geometry; a cluster's label is smaller when it appears earlier."""
    n = len(geoms)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    arr = np.asarray(geoms, dtype=object)
    left, right = shapely.STRtree(arr).query(arr, predicate="dwithin", distance=distance)
    graph = coo_matrix((np.ones(len(left)), (left, right)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    _, first = np.unique(labels, return_index=True)  # first member of each component
    rank = np.empty(len(first), dtype=np.int64)
    rank[np.argsort(first)] = np.arange(len(first))
    return rank[labels]
