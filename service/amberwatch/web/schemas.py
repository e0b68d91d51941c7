"""Pydantic models of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class SceneOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    scene_key: str
    sensor: str
    family: str
    level: str
    acquired: datetime
    resolution: float
    crs: str
    bands: list[str]
    cloud_fraction: float
    source: str
    created_at: datetime | None = None


class ScenePathIn(BaseModel):
    path: str = Field(..., description="A server-side path under one of the allowed roots.")


class RunIn(BaseModel):
    scene: int | str = Field(..., description="Scene id or scene key.")
    model: str | None = Field(None, description="Model name or name@version; default per sensor.")
    reference: int | str | None = Field(
        None, description="An older scene (id or key): also run the change model against it.")
    pixel_threshold: float | None = Field(
        None, gt=0, le=1, description="Override the model's pixel threshold on P(pit)+P(pond) for this run.")
    min_confidence: float | None = Field(
        None, ge=0, le=1, description="Override the model's minimum object confidence for this run "
        "(lower: more sites found, more false alarms).")


class RunOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    state: str
    progress: float
    message: str | None
    model_version: str | None
    scene_ids: list[int]
    n_detections: int
    provider: str | None
    parameters: dict[str, Any]
    error: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    published_at: datetime | None
    layers: dict[str, str] = Field(default_factory=dict)


class ModelOut(BaseModel):
    name: str
    version: str
    family: str
    default: bool
    sha256: str
    metrics: dict[str, Any]
    card: dict[str, Any]
