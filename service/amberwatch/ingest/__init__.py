"""Ingestion stage: Sentinel-2 / Landsat / multi-band GeoTIFF / VHR RGB -> reflectance + cloud mask COGs + STAC."""

from amberwatch.ingest.pipeline import ingest_path, plan_input

__all__ = ["ingest_path", "plan_input"]
