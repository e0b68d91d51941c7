"""Load a registered VHR chip classifier (model.onnx + mlm.json) and score RGB chips with onnxruntime.

Four input kinds, named in the card (``amberwatch:input_kind``):
- ``image_square_stack`` (2.2.0+): the ``image_square`` CNN in ``model.onnx`` plus ``gbm.onnx`` (a LightGBM on
  :func:`amberwatch.vhr.features.extract_features`, ``amberwatch:feature_version``) and a logistic head
  (``amberwatch:stack``), run as a cascade (:mod:`amberwatch.vhr.stack`): only chips whose CNN probability lies in
  the band get the hand-made features; scores are re-centred so that 0.5 is every stage's threshold;
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
from amberwatch.vhr.stack import StackHead

log = logging.getLogger(__name__)

DEFAULT_MODEL_NAME = "vhr-texty"
STACK_KIND = "image_square_stack"
GBM_FILE = "gbm.onnx"


@dataclass
class VhrModel:
    """An onnxruntime session plus the card fields inference needs."""

    path: Path
    name: str
    version: str
    threshold: float
    input_kind: str  # "image_square_stack" | "image_square" | "image" | "features"
    input_gsd: float
    input_size: int | None
    session: ort.InferenceSession
    provider: str
    card: dict[str, Any]
    gbm_session: ort.InferenceSession | None = None  # image_square_stack: the LightGBM on the hand features
    stack: StackHead | None = None  # image_square_stack: head, thresholds, band

    def __post_init__(self) -> None:
        self._lock = threading.Lock()
        self._input = self.session.get_inputs()[0].name
        self._gbm_input = self.gbm_session.get_inputs()[0].name if self.gbm_session is not None else None
        self.counts = {"scored": 0, "featured": 0}  # chips scored / chips that needed the hand-made features

    def score(self, rgb: np.ndarray, gsd: float = CHIP_GSD) -> float:
        """Probability of amber mining for one uint8 RGB chip (H, W, 3) at ``gsd`` m/px."""
        return float(self.score_many([rgb], gsd)[0])

    def score_many(self, chips: list[np.ndarray], gsd: float = CHIP_GSD) -> np.ndarray:
        """Probabilities for a list of uint8 RGB chips (H, W, 3) of any sizes."""
        if not chips:
            return np.zeros(0, dtype=np.float64)
        if self.input_kind == STACK_KIND:
            return self._score_stack(chips)
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

    def _score_stack(self, chips: list[np.ndarray]) -> np.ndarray:
        """The cascade: CNN on every chip; hand features -> LightGBM -> head only for chips inside the band."""
        from amberwatch.vhr.features import extract_features

        assert self.stack is not None and self.gbm_session is not None  # _load sets both for this kind
        p_cnn = self._score_square(chips)
        band = np.flatnonzero(self.stack.in_band(p_cnn))
        p_gbm = np.full(len(chips), np.nan)
        if band.size:
            x = np.stack([extract_features(chips[i]) for i in band]).astype(np.float32)
            with self._lock:
                p_gbm[band] = _positive_column(self.gbm_session.run(None, {self._gbm_input: x}))
        with self._lock:
            self.counts["scored"] += len(chips)
            self.counts["featured"] += int(band.size)
        return self.stack.scores(p_cnn, p_gbm)

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
    kind = str(props.get("amberwatch:input_kind", "image"))
    if kind in ("image_square", STACK_KIND) and "amberwatch:input_size" not in props:
        raise InputError(f"{model_dir.name}: an {kind} model's card needs amberwatch:input_size")
    session, provider = create_session(model_dir / "model.onnx", list(providers) if providers else None)
    gbm_session, stack = _load_stack(model_dir, props, providers) if kind == STACK_KIND else (None, None)
    model = VhrModel(
        path=model_dir,
        name=str(props.get("mlm:name", DEFAULT_MODEL_NAME)),
        version=str(props.get("amberwatch:version", model_dir.name)),
        threshold=float(props["amberwatch:threshold"]),
        input_kind=kind,
        input_gsd=float(props.get("amberwatch:input_gsd", CHIP_GSD)),
        input_size=int(props["amberwatch:input_size"]) if "amberwatch:input_size" in props else None,
        session=session,
        provider=provider,
        card=card,
        gbm_session=gbm_session,
        stack=stack,
    )
    log.info("VHR model %s %s (%s input, threshold %.3f) on %s", model.name, model.version, model.input_kind,
             model.threshold, provider)
    return model


def _load_stack(model_dir: Path, props: dict[str, Any], providers: tuple[str, ...] | None,
                ) -> tuple[ort.InferenceSession, StackHead]:
    """``gbm.onnx`` (same providers as the CNN) and the head of an image_square_stack card; InputError when either
    is missing or malformed, or the card's feature version is not this service's."""
    from amberwatch.vhr.features import FEATURE_VERSION, N_FEATURES

    name = model_dir.name
    trained = props.get("amberwatch:feature_version")
    if str(trained) != FEATURE_VERSION:
        raise InputError(f"{name}: the model was trained on hand-made features version {trained!r}; this service "
                         f"computes version {FEATURE_VERSION}")
    try:
        stack = StackHead.from_properties(props["amberwatch:stack"])
    except (KeyError, TypeError, ValueError) as err:
        raise InputError(f"{name}: the card's amberwatch:stack is missing or malformed ({err})") from err
    path = model_dir / GBM_FILE
    if not path.is_file():
        raise InputError(f"{name} is an {STACK_KIND} model but {GBM_FILE} is missing")
    try:
        session, _ = create_session(path, list(providers) if providers else None)
    except Exception as err:  # onnxruntime raises its own Fail/InvalidProtobuf/... types
        raise InputError(f"{name}: {GBM_FILE} is not a loadable ONNX model ({type(err).__name__})") from err
    shape = session.get_inputs()[0].shape
    if len(shape) != 2 or shape[1] != N_FEATURES:
        raise InputError(f"{name}: {GBM_FILE} takes input {shape}, not [N, {N_FEATURES}] hand-made features")
    return session, stack


def load_vhr_model(model_dir: Path | str | None = None, providers: list[str] | None = None, *,
                   models_dir: Path | None = None) -> VhrModel:
    """Open a registry folder ``<name>/<version>``; cached per folder.

    Without ``model_dir``: the highest version of vhr-texty in the registry ``models_dir`` (settings.models_dir).
    """
    model_dir = Path(model_dir) if model_dir is not None else default_model_dir(models_dir)
    for need in ("model.onnx", "mlm.json"):
        if not (model_dir / need).is_file():
            raise InputError(f"{model_dir} is not a VHR model folder: {need} is missing")
    mtime = max(p.stat().st_mtime for p in (model_dir / "model.onnx", model_dir / "mlm.json", model_dir / GBM_FILE)
                if p.is_file())
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
