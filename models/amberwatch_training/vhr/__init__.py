"""Training of the very-high-resolution chip classifier (Texty method, model trained from scratch)."""

from __future__ import annotations

from pathlib import Path
from typing import Any


def train(data_dir: Path, out_dir: Path, seed: int = 0, **kwargs: Any) -> dict[str, Any]:
    """Train, evaluate by tile and export; see ``amberwatch_training.vhr.train.train``."""
    from amberwatch_training.vhr.train import train as _train

    return _train(data_dir, out_dir, seed, **kwargs)


__all__ = ["train"]
