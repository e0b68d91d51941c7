"""Ingestion stage: Sentinel-2 / Landsat / multi-band GeoTIFF / VHR RGB -> reflectance + cloud mask COGs + STAC."""

from amberwatch.ingest.pipeline import ingest_path, plan_input, recognise_input
from amberwatch.ingest.safety import IngestLimits

__all__ = ["IngestLimits", "ingest_path", "plan_input", "recognise_input"]
