"""Sentinel-1 SAR analysis: speckle filtering, open-water/pond detection, change between dates
(whose polygons ``track.sites`` uses as evidence on cloudy dates).

Pure functions over numpy arrays (``amberwatch.ingest.sentinel1.S1Scene`` gives the pixels); the water model runs
as ONNX through ``amberwatch.detect.session`` like the optical models.
"""
