"""Pydantic models of the REST API."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

MAX_INT = 2**31 - 1


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
    source: str = Field(..., description="The name of the file or folder the scene came from.")
    created_at: datetime | None = None

    @field_validator("source")
    @classmethod
    def _name_only(cls, value: str) -> str:
        """Never show a server path: the base name says where the scene came from."""
        return value.replace("\\", "/").rstrip("/").rsplit("/", 1)[-1]


class ScenePathIn(BaseModel):
    path: str = Field(..., min_length=1, max_length=4096,
                      description="A server-side path under one of the allowed roots.")


class RunIn(BaseModel):
    scene: int | str = Field(..., description="Scene id or scene key.")
    model: str | None = Field(None, max_length=200, description="Model name or name@version; default per sensor.")
    reference: int | str | None = Field(
        None, description="An older scene (id or key): also run the change model against it.")

    @field_validator("scene", "reference")
    @classmethod
    def _scene_ref(cls, value: int | str | None) -> int | str | None:
        if isinstance(value, int) and not 0 < value <= MAX_INT:
            raise ValueError(f"a scene id is between 1 and {MAX_INT}")
        if isinstance(value, str) and not 0 < len(value) <= 200:
            raise ValueError("a scene key has 1-200 characters")
        return value
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


class TrackIn(BaseModel):
    paths: list[str] = Field(..., min_length=1, max_length=500,
                             description="Server-side scenes or folders of scenes under the allowed roots.")
    model: str | None = Field(None, max_length=200, description="Model name or name@version; default per sensor.")


class JobOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)
    id: int
    kind: str
    state: str = Field(..., description="queued, running, succeeded or failed")
    progress: float
    message: str | None
    attempts: int
    error: str | None
    result: dict[str, Any] | None
    created_by: str | None
    created_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None


class Problem(BaseModel):
    """An error: what is wrong, in words (no server paths, no database details)."""

    detail: str
