"""Load a registered VHR chip classifier (model.onnx + mlm.json) and score RGB chips with onnxruntime.

Three input kinds, named in the card (``amberwatch:input_kind``):
- ``image_square``: a fine-tuned CNN (2.0.0+); input ``image`` float32 [N, 3, S, S] 0..255, every chip squeezed to
  ``amberwatch:input_size`` S (:func:`square_input`); the runtime scores the 8 dihedral views of each chip in one
  batch and averages them; output [N, 1];
- ``image``: a CNN; input ``image`` float32 [1, 3, H, W] 0..255 at ``amberwatch:input_gsd`` m/px, output [1, 1];
- ``features``: gradient boosting on ``amberwatch.vhr.features.extract_features``; input float32 [N, F],
  output probabilities [N, 2].
"""

from __future__ import annotations

import json
import logging
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort

from amberwatch.detect.registry import card_properties
from amberwatch.detect.session import create_session
from amberwatch.errors import InputError
from amberwatch.vhr.dihedral import all_views, mean_over_views
from amberwatch.vhr.preprocess import CHIP_GSD, cnn_input, square_input

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "vhr-texty"


@dataclass
class VhrModel:
    """An onnxruntime session plus the card fields inference needs."""

    path: Path
    name: str
    version: str
    threshold: float
    input_kind: str  # "image" | "features"
    input_gsd: float
    input_size: int | None
    session: ort.InferenceSession
    provider: str
    card: dict[str, Any]

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._input = self.session.get_inputs()[0].name

    def score(self, rgb: np.ndarray, gsd: float = CHIP_GSD) -> float:
        """Probability of amber mining for one uint8 RGB chip (H, W, 3) at ``gsd`` m/px."""
        return float(self.score_many([rgb], gsd)[0])

    def score_many(self, chips: list[np.ndarray], gsd: float = CHIP_GSD) -> np.ndarray:
        """Probabilities for a list of uint8 RGB chips (H, W, 3) of any sizes."""
        if not chips:
            return np.zeros(0, dtype=np.float64)
        if self.input_kind == "image_square":
            return self._score_square(chips)
        if self.input_kind == "features":
            from amberwatch.vhr.features import extract_features

            x = np.stack([extract_features(c) for c in chips]).astype(np.float32)
            with self._lock:
                probs = self.session.run(None, {self._input: x})
            return np.asarray(_positive_column(probs), dtype=np.float64)
        out = np.zeros(len(chips), dtype=np.float64)
        for i, c in enumerate(chips):
            x = cnn_input(c, gsd, self.input_gsd)[None].astype(np.float32)
            with self._lock:
                out[i] = float(np.asarray(self.session.run(None, {self._input: x})[0]).reshape(-1)[0])
        return out

    def _score_square(self, chips: list[np.ndarray], batch: int = 16) -> np.ndarray:
        """Mean over the 8 dihedral views; ``batch`` chips (8 x batch views) per onnxruntime call."""
        size = self.input_size
        assert size is not None  # _load refuses an image_square card without amberwatch:input_size
        out = np.zeros(len(chips), dtype=np.float64)
        for s in range(0, len(chips), batch):
            x = np.stack([square_input(c, size) for c in chips[s : s + batch]])
            views = all_views(x).astype(np.float32)
            with self._lock:
                p = self.session.run(None, {self._input: views})[0]
            out[s : s + len(x)] = mean_over_views(p, len(x))
        return out


def _positive_column(outputs: list[Any]) -> np.ndarray:
    """From a converted classifier's outputs ([label, probabilities]) take P(class 1)."""
    for o in outputs:
        a = np.asarray(o)
        if a.ndim == 2 and a.shape[1] == 2:
            return a[:, 1]
    raise RuntimeError("the ONNX classifier has no [N, 2] probability output")


@lru_cache(maxsize=8)
def _load(path: str, mtime: float, providers: tuple[str, ...] | None) -> VhrModel:
    model_dir = Path(path)
    card = json.loads((model_dir / "mlm.json").read_text())
    props = card_properties(card)
    if props.get("amberwatch:family") != "vhr_rgb":
        raise InputError(f"{model_dir}: not a VHR RGB model (amberwatch:family={props.get('amberwatch:family')!r})")
    if props.get("amberwatch:input_kind") == "image_square" and "amberwatch:input_size" not in props:
        raise InputError(f"{model_dir.name}: an image_square model's card needs amberwatch:input_size")
    session, provider = create_session(model_dir / "model.onnx", list(providers) if providers else None)
    model = VhrModel(
        path=model_dir,
        name=str(props.get("mlm:name", DEFAULT_MODEL_NAME)),
        version=str(props.get("amberwatch:version", model_dir.name)),
        threshold=float(props["amberwatch:threshold"]),
        input_kind=str(props.get("amberwatch:input_kind", "image")),
        input_gsd=float(props.get("amberwatch:input_gsd", CHIP_GSD)),
        input_size=int(props["amberwatch:input_size"]) if "amberwatch:input_size" in props else None,
        session=session,
        provider=provider,
        card=card,
    )
    log.info("VHR model %s %s (%s input, threshold %.3f) on %s", model.name, model.version, model.input_kind,
             model.threshold, provider)
    return model


def load_vhr_model(model_dir: Path | str | None = None, providers: list[str] | None = None, *,
                   models_dir: Path | None = None) -> VhrModel:
    """Open a registry folder ``<name>/<version>``; cached per folder.

    Without ``model_dir``: the highest version of vhr-texty in the registry ``models_dir`` (settings.models_dir).
    """
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir(models_dir)
    for need in ("model.onnx", "mlm.json"):
        if not (model_dir / need).is_file():
            raise InputError(f"{model_dir} is not a VHR model folder: {need} is missing")
    mtime = (model_dir / "model.onnx").stat().st_mtime
    return _load(str(model_dir.resolve()), mtime, tuple(providers) if providers else None)


def default_model_dir(models_dir: Path | None) -> Path:
    """Highest version of the ``vhr-texty`` model in the registry ``models_dir`` (settings.models_dir)."""
    from amberwatch.detect.registry import version_key

    if models_dir is None:
        raise InputError("no VHR model folder given and no model registry to pick the newest vhr-texty from")
    root = Path(models_dir) / DEFAULT_MODEL_NAME
    versions = [p for p in root.glob("*") if (p / "model.onnx").is_file() and (p / "mlm.json").is_file()]
    if not versions:
        raise InputError(f"no {DEFAULT_MODEL_NAME} model in {root}; train one (amberwatch train vhr) or pass --model")
    return max(versions, key=lambda p: version_key(p.name))


def score_image(rgb: np.ndarray, model_dir: Path | str | None = None, *, models_dir: Path | None = None) -> float:
    """Probability (0..1) that one RGB chip (H, W, 3, uint8, ~0.37 m/px) shows amber mining.

    ``model_dir`` unset: the newest vhr-texty in the registry ``models_dir``.
    """
    arr = np.asarray(rgb)
    if arr.ndim != 3 or arr.shape[2] not in (3, 4):
        raise InputError(f"expected an RGB image array of shape (H, W, 3), got {arr.shape}")
    if arr.dtype != np.uint8:
        raise InputError(f"expected a uint8 RGB image, got dtype {arr.dtype}")
    return load_vhr_model(model_dir, models_dir=models_dir).score(arr[..., :3])
