"""``/api/models``: the model registry (name, version, family, card, metrics; which version runs by default)."""

from __future__ import annotations

from fastapi import APIRouter

from amberwatch.detect.registry import list_models as registry_models
from amberwatch.detect.registry import newest
from amberwatch.web.deps import SettingsDep
from amberwatch.web.schemas import ModelOut

router = APIRouter(prefix="/api/models", tags=["models"])


@router.get("", response_model=list[ModelOut])
def list_models(settings: SettingsDep) -> list[ModelOut]:
    models = registry_models(settings.models_dir)
    # the version a run without --model uses: the configured name at its highest version
    defaults = {m.ref for m in (newest(models, n) for n in settings.default_models.values()) if m is not None}
    return [
        ModelOut(name=m.name, version=m.version, family=m.family, sha256=m.sha256, metrics=m.metrics,
                 card=m.card, default=m.ref in defaults and settings.default_models.get(m.family) == m.name)
        for m in models
    ]
