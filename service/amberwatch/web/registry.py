"""``/api/models``: the model registry (name, version, family, card, metrics; which version runs by default)."""

from __future__ import annotations

from fastapi import APIRouter

from amberwatch.detect.registry import default_refs
from amberwatch.detect.registry import list_models as registry_models
from amberwatch.web.deps import SettingsDep
from amberwatch.web.schemas import ModelOut

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("", response_model=list[ModelOut])
def list_models(settings: SettingsDep) -> list[ModelOut]:
    models = registry_models(settings.models_dir)
    defaults = default_refs(models, settings.default_models)  # what a run without --model uses
    return [
        ModelOut(name=m.name, version=m.version, family=m.family, sha256=m.sha256, metrics=m.metrics,
                 card=m.card, default=m.ref in defaults)
        for m in models
    ]
