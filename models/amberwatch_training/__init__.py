"""AmberWatch training: simulated mining in real scenes, compact U-Net segmentation models, ONNX export, evaluation."""

__version__ = "1.0.0"
