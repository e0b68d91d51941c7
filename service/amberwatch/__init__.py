"""AmberWatch: detect illegal amber mining on satellite imagery and publish it as OGC layers."""

__version__ = "0.1.0"
