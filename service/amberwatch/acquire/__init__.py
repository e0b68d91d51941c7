"""Acquisition from STAC: search APIs and static catalogs, map assets to our bands, read the area of interest only.

Everything here is reached from ``usecases.stac_monitors``; no database, no web framework. Every URL it fetches
(search pages, catalogs, assets) is checked against the allow-list of hosts first (``hosts.check_url``).
"""
