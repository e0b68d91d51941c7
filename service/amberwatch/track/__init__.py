"""Monitoring through time: persistent sites, their history, status events, admin position and statistics."""

from amberwatch.track.sites import CLUSTER_DISTANCE_M, rebuild_sites, update_sites

__all__ = ["CLUSTER_DISTANCE_M", "rebuild_sites", "update_sites"]
