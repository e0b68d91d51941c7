"""Ingestion stage: Sentinel-2 / Landsat / multi-band GeoTIFF / VHR RGB -> reflectance + cloud mask COGs + STAC;
Sentinel-1 backscatter (RTC GeoTIFFs, GRD .SAFE) -> ``S1Scene`` (``ingest_s1``)."""

from amberwatch.ingest.pipeline import ingest_path, plan_input, recognise_input
from amberwatch.ingest.safety import IngestLimits
from amberwatch.ingest.sentinel1 import S1Scene, ingest_s1

__all__ = ["IngestLimits", "S1Scene", "ingest_path", "ingest_s1", "plan_input", "recognise_input"]
