"""Model registry: ``<models_dir>/<name>/<version>/{model.onnx, mlm.json, metrics.json}``."""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from packaging.version import InvalidVersion, Version

from amberwatch.detect.decision import DecisionRule
from amberwatch.errors import InputError

log = logging.getLogger(__name__)

FAMILIES = ("sentinel2", "landsat", "vhr_rgb", "change", "sentinel1")


@dataclass
class ModelInfo:
    """One registered model version and its STAC MLM card."""

    name: str
    version: str
    family: str  # "sentinel2" | "landsat" | "vhr_rgb"
    path: Path  # the version directory
    onnx_path: Path
    card: dict[str, Any]
    metrics: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""

    @property
    def ref(self) -> str:
        return f"{self.name}@{self.version}"

    @property
    def properties(self) -> dict[str, Any]:
        """The card's properties (a STAC Item keeps them under ``properties``)."""
        return card_properties(self.card)

    @property
    def input_bands(self) -> list[str]:
        """eo common names of the model input channels, in order (``mlm:input[0].bands``)."""
        inputs = self.properties.get("mlm:input") or []
        if not inputs:
            return []
        return [b["name"] if isinstance(b, dict) else str(b) for b in inputs[0].get("bands", [])]

    @property
    def input_multiple(self) -> int:
        return int(self.properties.get("amberwatch:input_multiple", 1) or 1)

    @property
    def decision(self) -> DecisionRule:
        """Pixel threshold and minimum object confidence chosen for this model (card ``amberwatch:decision``)."""
        return DecisionRule.from_card(self.properties)

    @property
    def context_margin(self) -> int | None:
        """Context pixels the model wants around each window (card ``amberwatch:context_margin``), if stated."""
        value = self.properties.get("amberwatch:context_margin")
        return int(value) if value is not None else None


def card_properties(card: dict[str, Any]) -> dict[str, Any]:
    props = card.get("properties")
    return props if isinstance(props, dict) else card


def model_href(card: dict[str, Any]) -> str:
    """The ONNX file named by the card's ``mlm:model`` asset (relative href), else ``model.onnx``."""
    for asset in (card.get("assets") or {}).values():
        href = str(asset.get("href", ""))
        if "mlm:model" in (asset.get("roles") or []) and href and "://" not in href and not href.startswith("/"):
            return href.removeprefix("./")
    return "model.onnx"


def version_key(version: str) -> tuple[int, Version | str]:
    """Sort key: valid (semantic/PEP 440) versions by value, after anything unparseable."""
    try:
        return (1, Version(version.lstrip("vV")))
    except InvalidVersion:
        return (0, version)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def load_model(version_dir: Path) -> ModelInfo:
    """Read one ``<name>/<version>`` directory (``mlm.json`` is required)."""
    card = json.loads((version_dir / "mlm.json").read_text())
    props = card_properties(card)
    metrics_path = version_dir / "metrics.json"
    metrics = json.loads(metrics_path.read_text()) if metrics_path.exists() else {}
    onnx_path = version_dir / model_href(card)
    family = str(props.get("amberwatch:family", ""))
    if family not in FAMILIES:
        raise ValueError(f"{version_dir / 'mlm.json'}: amberwatch:family {family!r} is not one of {FAMILIES}")
    return ModelInfo(
        name=str(props.get("mlm:name") or version_dir.parent.name),
        version=str(props.get("amberwatch:version") or version_dir.name),
        family=family,
        path=version_dir,
        onnx_path=onnx_path,
        card=card,
        metrics=metrics,
        sha256=file_sha256(onnx_path) if onnx_path.exists() else "",
    )


def list_models(models_dir: Path) -> list[ModelInfo]:
    """All readable models in the registry, sorted by name then version; broken entries are logged and skipped."""
    models_dir = Path(models_dir)
    found: list[ModelInfo] = []
    if not models_dir.is_dir():
        return found
    for card_path in sorted(models_dir.glob("*/*/mlm.json")):
        try:
            found.append(load_model(card_path.parent))
        except (OSError, ValueError) as exc:
            log.warning("model registry: skipping %s: %s", card_path.parent, exc)
    found.sort(key=lambda m: (m.name, version_key(m.version)))
    return found


def describe(models: list[ModelInfo]) -> str:
    return ", ".join(f"{m.ref} ({m.family})" for m in models) or "none"


def newest(models: list[ModelInfo], name: str) -> ModelInfo | None:
    """The highest version of ``name`` among ``models`` (None when it is not registered)."""
    candidates = [m for m in models if m.name == name]
    return max(candidates, key=lambda m: version_key(m.version)) if candidates else None


def default_refs(models: list[ModelInfo], defaults: dict[str, str]) -> set[str]:
    """``name@version`` of the model a run without ``--model`` uses, per family: the configured name (``defaults``,
    family -> name) at its highest version."""
    chosen = (newest(models, name) for name in defaults.values())
    return {m.ref for m in chosen if m is not None and defaults.get(m.family) == m.name}


def get_model(models_dir: Path, name: str | None, family: str, defaults: dict[str, str]) -> ModelInfo:
    """Resolve ``name`` / ``name@version`` / None (the family's default) to a registered model for ``family``.

    Without a version the highest version wins. Raises InputError naming the available models when the
    model is unknown or was trained for another sensor family than the scene's.
    """
    models = list_models(models_dir)
    if not name:
        name = defaults.get(family)
        if not name:
            raise InputError(
                f"No default model is configured for sensor family {family!r}; choose one of: {describe(models)}"
            )
    base, _, version = name.partition("@")
    model = newest(models, base)
    if model is None:
        raise InputError(f"Unknown model {base!r} in {models_dir}. Available models: {describe(models)}")
    if version:
        candidates = [m for m in models if m.name == base]
        chosen = [m for m in candidates if m.version.lstrip("vV") == version.lstrip("vV")]
        if not chosen:
            versions = ", ".join(m.version for m in candidates)
            raise InputError(f"Model {base!r} has no version {version!r}. Available versions: {versions}")
        model = chosen[0]
    if model.family != family:
        same_family = [m for m in models if m.family == family]
        raise InputError(
            f"Model {model.ref} is for {model.family} imagery but the scene is {family}. "
            f"Models for {family}: {describe(same_family)}"
        )
    return model
