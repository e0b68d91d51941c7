"""track.clustering: single linkage at a distance, pure geometry (no database)."""

from __future__ import annotations

from shapely.geometry import Point, box

from amberwatch.track.clustering import single_linkage


def test_single_linkage_links_chains_and_keeps_apart_what_is_farther() -> None:
    geoms = [
        box(500, 0, 510, 10),  # 0: alone
        box(0, 0, 10, 10),  # 1: chain 1-2-3, each 60 m from the next
        box(70, 0, 80, 10),
        box(140, 0, 150, 10),
        box(210.001, 0, 220, 10),  # 4: 60.001 m from 3: apart
        Point(505, 70),  # 5: exactly 60 m from 0: joins it
    ]
    labels = single_linkage(geoms, 60.0).tolist()
    assert labels == [0, 1, 1, 1, 2, 0]  # numbered in order of first appearance


def test_single_linkage_empty() -> None:
    assert single_linkage([], 60.0).tolist() == []
