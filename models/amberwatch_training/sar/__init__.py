"""Sentinel-1 models: the per-scene-threshold open-water graph (``water_onnx``)."""
