"""Random-Forest change model (stable / vegetation->bare / vegetation->water / bare->vegetation) on bi-temporal
per-pixel features; training pairs are simulated changes in real scenes."""

from .forest import train

__all__ = ["train"]
