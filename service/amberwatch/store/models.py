"""ORM tables (SQLAlchemy 2 + GeoAlchemy2). Schema changes go through Alembic migrations."""

from __future__ import annotations

from datetime import date, datetime

from geoalchemy2 import Geometry
from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Column,
    Date,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY, JSONB, UUID
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


class Base(DeclarativeBase):
    pass


run_scenes = Table(
    "run_scenes",
    Base.metadata,
    Column("run_id", ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True),
    Column("scene_id", ForeignKey("scenes.id", ondelete="RESTRICT"), primary_key=True),
)


class Scene(Base):
    """An ingested scene on its common grid, with its STAC item."""

    __tablename__ = "scenes"
    id: Mapped[int] = mapped_column(primary_key=True)
    scene_key: Mapped[str] = mapped_column(String(200), unique=True)
    sensor: Mapped[str] = mapped_column(String(40))
    family: Mapped[str] = mapped_column(String(20))
    level: Mapped[str] = mapped_column(String(10))
    acquired: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    resolution: Mapped[float] = mapped_column(Float)
    crs: Mapped[str] = mapped_column(Text)
    bands: Mapped[list[str]] = mapped_column(ARRAY(String))
    cloud_fraction: Mapped[float] = mapped_column(Float, default=0.0)
    footprint = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True))
    bounds: Mapped[list[float] | None] = mapped_column(ARRAY(Float), nullable=True)  # in crs (added by 0004)
    source: Mapped[str] = mapped_column(Text)
    reflectance_path: Mapped[str] = mapped_column(Text)
    cloud_mask_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    stac_item: Mapped[dict] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ModelVersion(Base):
    """A registered model version (folder in the registry) that runs can refer to."""

    __tablename__ = "model_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[str] = mapped_column(String(40))
    family: Mapped[str] = mapped_column(String(20))
    sha256: Mapped[str] = mapped_column(String(64))
    card: Mapped[dict] = mapped_column(JSONB, default=dict)
    metrics: Mapped[dict] = mapped_column(JSONB, default=dict)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())

    @property
    def label(self) -> str:
        return f"{self.name}@{self.version}"


class Run(Base):
    """One detection run = one published layer version. Only ``published`` runs are visible in the layers."""

    __tablename__ = "runs"
    __table_args__ = (
        CheckConstraint("state in ('pending','queued','running','published','failed')", name="runs_state_check"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    model_version_id: Mapped[int | None] = mapped_column(ForeignKey("model_versions.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(12), default="pending", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    parameters: Mapped[dict] = mapped_column(JSONB, default=dict)
    provider: Mapped[str | None] = mapped_column(String(60), nullable=True)
    probability_path: Mapped[str | None] = mapped_column(Text, nullable=True)
    n_detections: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    published_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    queue_job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    # clear-sky footprint of the run's scene (DetectionResult.clear_sky; NULL = clear everywhere), added by 0006
    clear_sky = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True,
                              deferred=True)

    model_version: Mapped[ModelVersion | None] = relationship()
    scenes: Mapped[list[Scene]] = relationship(secondary=run_scenes)


class RunClearSkyPiece(Base):
    """A run's clear sky cut into small polygons once (``track.geo.cut_into_pieces``), found by their index when
    tracking asks how much of a site a run saw (migration 0014)."""

    __tablename__ = "run_clear_sky_pieces"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    geom = mapped_column(Geometry("POLYGON", srid=4326, spatial_index=True), nullable=False)


class Site(Base):
    """A place of mining followed across runs; holds its latest state."""

    __tablename__ = "sites"
    __table_args__ = (
        CheckConstraint("status in ('new','active','abandoned','recovering')", name="sites_status_check"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True))
    max_geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False))
    status: Mapped[str] = mapped_column(String(12), default="new")
    first_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_seen: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    last_observed: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    area_ha: Mapped[float] = mapped_column(Float, default=0.0)
    max_area_ha: Mapped[float] = mapped_column(Float, default=0.0)
    pit_area_ha: Mapped[float] = mapped_column(Float, default=0.0)
    pond_area_ha: Mapped[float] = mapped_column(Float, default=0.0)
    confidence: Mapped[float] = mapped_column(Float, default=0.0)
    n_observations: Mapped[int] = mapped_column(Integer, default=1)
    first_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    last_run_id: Mapped[int] = mapped_column(ForeignKey("runs.id"))
    oblast: Mapped[str | None] = mapped_column(Text, nullable=True)
    raion: Mapped[str | None] = mapped_column(Text, nullable=True)
    hromada: Mapped[str | None] = mapped_column(Text, nullable=True)
    protected_areas: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    # added by migration 0002 (monitoring through time, amberwatch.track)
    growth_rate_ha_yr: Mapped[float | None] = mapped_column(Float, nullable=True)
    disturbance: Mapped[str | None] = mapped_column(String(10), nullable=True)
    disturbance_score: Mapped[float | None] = mapped_column(Float, nullable=True)
    protected_distance_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    in_protected_area: Mapped[bool] = mapped_column(Boolean, default=False, server_default="false")
    status_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    merged_into_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"), nullable=True)


class SiteObservation(Base):
    """A site at one observation date: its areas and the status it had after that observation."""

    __tablename__ = "site_observations"
    __table_args__ = (UniqueConstraint("site_id", "observed_at"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    detected: Mapped[bool] = mapped_column(Boolean)
    area_ha: Mapped[float] = mapped_column(Float)
    pit_area_ha: Mapped[float] = mapped_column(Float)
    pond_area_ha: Mapped[float] = mapped_column(Float)
    cumulative_area_ha: Mapped[float] = mapped_column(Float)
    status: Mapped[str] = mapped_column(String(12))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True)
    # 'optical' (a detection run) or 'sentinel1' (radar evidence on a cloudy date: run_id is then the last optical run)
    sensor: Mapped[str] = mapped_column(String(12), default="optical", server_default="optical")
    sar_change_ha: Mapped[float | None] = mapped_column(Float, nullable=True)


class Event(Base):
    """A status change of a site (``from_status`` is NULL when the site appears)."""

    __tablename__ = "events"
    __table_args__ = (UniqueConstraint("site_id", "observed_at", "to_status", name="events_site_date_status_key"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), index=True)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), index=True)
    from_status: Mapped[str | None] = mapped_column(String(12), nullable=True)
    to_status: Mapped[str] = mapped_column(String(12), index=True)
    area_ha: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    geom = mapped_column(Geometry("POINT", srid=4326, spatial_index=True))
    extent = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=True)


class AdminUnit(Base):
    """An administrative unit (oblast, raion, hromada) loaded with ``amberwatch layers load``."""

    __tablename__ = "admin_units"
    __table_args__ = (CheckConstraint("kind in ('oblast','raion','hromada')", name="admin_units_kind_check"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(10), index=True)
    name: Mapped[str] = mapped_column(Text)
    code: Mapped[str | None] = mapped_column(Text, nullable=True)
    parent: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(Text)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True))


class ProtectedArea(Base):
    """A protected area polygon (Ramsar site, reserve, buffer zone...)."""

    __tablename__ = "protected_areas"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    category: Mapped[str | None] = mapped_column(Text, nullable=True)
    code: Mapped[str | None] = mapped_column(Text, nullable=True)
    source: Mapped[str] = mapped_column(Text, index=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True))


class Detection(Base):
    """A polygon detected by one run in one scene."""

    __tablename__ = "detections"
    __table_args__ = (CheckConstraint("class in ('pit','pond')", name="detections_class_check"),
                      Index("ix_detections_run_id_id", "run_id", "id"))  # a version's pages in id order (0013)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    scene_id: Mapped[int] = mapped_column(ForeignKey("scenes.id"))
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="SET NULL"), nullable=True, index=True)
    cls: Mapped[str] = mapped_column("class", String(8))
    confidence: Mapped[float] = mapped_column(Float)
    area_ha: Mapped[float] = mapped_column(Float)
    observed_at: Mapped[datetime] = mapped_column(DateTime(timezone=True))  # no index: queries are spatial (0013)
    change_class: Mapped[str | None] = mapped_column(String(24), nullable=True)
    change_fraction: Mapped[float | None] = mapped_column(Float, nullable=True)
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True))


class ApiKey(Base):
    """A machine key: only its SHA-256 is stored; ``prefix`` (the first characters) names it in logs."""

    __tablename__ = "api_keys"
    __table_args__ = (
        CheckConstraint("role in ('admin','analyst','moderator','validator','field')", name="api_keys_role_check"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    role: Mapped[str] = mapped_column(String(20))
    prefix: Mapped[str] = mapped_column(String(16), index=True)
    key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AuditEntry(Base):
    """One state-changing request or command: who, what, when, with what outcome."""

    __tablename__ = "audit_log"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now(), index=True)
    actor: Mapped[str] = mapped_column(String(100))
    role: Mapped[str | None] = mapped_column(String(20), nullable=True)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    action: Mapped[str] = mapped_column(String(100))
    target: Mapped[str | None] = mapped_column(Text, nullable=True)
    status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    details: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")


class Job(Base):
    """A long operation other than a detection run (tracking a series, ingest), queued and run by a worker."""

    __tablename__ = "jobs"
    __table_args__ = (
        CheckConstraint("state in ('queued','running','succeeded','failed')", name="jobs_state_check"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20), index=True)
    state: Mapped[str] = mapped_column(String(12), default="queued", index=True)
    progress: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    message: Mapped[str | None] = mapped_column(Text, nullable=True)
    parameters: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")
    result: Mapped[dict | None] = mapped_column(JSONB, nullable=True)
    error: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    queue_job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


class AlertSubscription(Base):
    """An area of interest (drawn polygon or admin unit) whose new events are sent to a webhook (migration 0007)."""

    __tablename__ = "alert_subscriptions"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    area = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=True), nullable=False)
    area_kind: Mapped[str] = mapped_column(String(10))
    area_name: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_url: Mapped[str | None] = mapped_column(Text, nullable=True)
    email: Mapped[str | None] = mapped_column(Text, nullable=True)
    secret: Mapped[str] = mapped_column(String(100))  # the HMAC key: needed in clear to sign
    unsubscribe_hash: Mapped[str] = mapped_column(String(64))
    statuses: Mapped[list[str] | None] = mapped_column(ARRAY(String(12)), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    client: Mapped[str | None] = mapped_column(String(64), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")


class AlertScan(Base):
    """A published run whose events were matched against the subscriptions (once per run)."""

    __tablename__ = "alert_scans"
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    scanned_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class AlertDelivery(Base):
    """One signed JSON message to one subscription's webhook: the new events of one run in its area."""

    __tablename__ = "alert_deliveries"
    __table_args__ = (UniqueConstraint("subscription_id", "run_id", name="alert_deliveries_once"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    subscription_id: Mapped[str] = mapped_column(
        ForeignKey("alert_subscriptions.id", ondelete="CASCADE"), index=True)
    run_id: Mapped[int] = mapped_column(ForeignKey("runs.id", ondelete="CASCADE"))
    event_ids: Mapped[list[int]] = mapped_column(ARRAY(BigInteger))
    body: Mapped[str] = mapped_column(Text)  # signed as stored: every retry sends the same bytes
    state: Mapped[str] = mapped_column(String(12), default="pending", server_default="pending", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    last_status: Mapped[int | None] = mapped_column(Integer, nullable=True)
    last_error: Mapped[str | None] = mapped_column(Text, nullable=True)
    details: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    delivered_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)


# -- volunteer validation and field checks (migration 0009) -------------------------------------------------------
class ValidationItem(Base):
    """Something for volunteers to look at (a detection, a site or a bare location), and its final answer."""

    __tablename__ = "validation_items"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    kind: Mapped[str] = mapped_column(String(10))
    detection_id: Mapped[int | None] = mapped_column(ForeignKey("detections.id", ondelete="CASCADE"), nullable=True)
    site_id: Mapped[int | None] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), nullable=True)
    geom = mapped_column(Geometry("GEOMETRY", srid=4326, spatial_index=True))
    source: Mapped[str] = mapped_column(String(20))
    priority: Mapped[int] = mapped_column(SmallInteger)
    rank: Mapped[float] = mapped_column(Float, default=0.0, server_default="0")
    expected_answer: Mapped[str | None] = mapped_column(String(12), nullable=True)
    votes_needed: Mapped[int] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(12), default="unvalidated", server_default="unvalidated")
    final_answer: Mapped[str | None] = mapped_column(String(12), nullable=True)
    final_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    decided_via: Mapped[str | None] = mapped_column(String(12), nullable=True)
    decided_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    sample: Mapped[str | None] = mapped_column(String(100), nullable=True)
    details: Mapped[dict] = mapped_column(JSONB, default=dict, server_default="{}")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ValidationVote(Base):
    """One volunteer's answer on one item (one vote per item and volunteer)."""

    __tablename__ = "validation_votes"
    __table_args__ = (UniqueConstraint("item_id", "voter", name="validation_votes_once"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("validation_items.id", ondelete="CASCADE"), index=True)
    voter: Mapped[str] = mapped_column(String(100), index=True)
    answer: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    comment: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class ValidationDecision(Base):
    """An analyst's final answer on an item (the audit step); the latest one counts."""

    __tablename__ = "validation_decisions"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("validation_items.id", ondelete="CASCADE"), index=True)
    analyst: Mapped[str] = mapped_column(String(100))
    answer: Mapped[str] = mapped_column(String(12))
    reason: Mapped[str | None] = mapped_column(String(20), nullable=True)
    note: Mapped[str | None] = mapped_column(Text, nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FieldCheck(Base):
    """A field team's visit to a site; ``id`` is the UUID the phone generated (a retried upload is stored once)."""

    __tablename__ = "field_checks"
    id = mapped_column(UUID(as_uuid=True), primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"), index=True)
    checked_on: Mapped[date] = mapped_column(Date)
    observer: Mapped[str] = mapped_column(String(200))
    state: Mapped[str] = mapped_column(String(14))
    disturbance: Mapped[int] = mapped_column(SmallInteger)
    position = mapped_column(Geometry("POINT", srid=4326, spatial_index=False), nullable=True)
    position_accuracy_m: Mapped[float | None] = mapped_column(Float, nullable=True)
    notes: Mapped[str | None] = mapped_column(Text, nullable=True)
    photos: Mapped[list] = mapped_column(JSONB, default=list, server_default="[]")
    submitted_by: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class FieldAssignment(Base):
    """A site a field team (a key name; NULL = every field team) should visit."""

    __tablename__ = "field_assignments"
    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    assignee: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StacMonitor(Base):
    """A STAC search watched for new scenes (``amberwatch monitor``, migration 0011)."""

    __tablename__ = "stac_monitors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    stac_url: Mapped[str] = mapped_column(Text)
    collection: Mapped[str] = mapped_column(String(200))
    aoi = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)
    cloud_max: Mapped[float | None] = mapped_column(Float, nullable=True)
    start: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default="true")
    created_by: Mapped[str | None] = mapped_column(String(100), nullable=True)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class StacMonitorRun(Base):
    """One search of a monitor (by the scheduler, the CLI or the API): what it found."""

    __tablename__ = "stac_monitor_runs"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("stac_monitors.id", ondelete="CASCADE"), index=True)
    trigger: Mapped[str] = mapped_column(String(12))
    started_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    found: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    new: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    skipped: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    error: Mapped[str | None] = mapped_column(Text, nullable=True)


class StacMonitorItem(Base):
    """A STAC item a monitor found: processed once (idempotent by item id), skipped, or failed after retries."""

    __tablename__ = "stac_monitor_items"
    __table_args__ = (UniqueConstraint("monitor_id", "item_id", name="stac_monitor_items_once"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    monitor_id: Mapped[int] = mapped_column(ForeignKey("stac_monitors.id", ondelete="CASCADE"))
    item_id: Mapped[str] = mapped_column(String(300))
    collection: Mapped[str | None] = mapped_column(String(200), nullable=True)
    acquired: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cloud_cover: Mapped[float | None] = mapped_column(Float, nullable=True)
    status: Mapped[str] = mapped_column(String(10), default="found", server_default="found", index=True)
    reason: Mapped[str | None] = mapped_column(Text, nullable=True)
    attempts: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    item: Mapped[dict] = mapped_column(JSONB)
    scene_id: Mapped[int | None] = mapped_column(ForeignKey("scenes.id", ondelete="SET NULL"), nullable=True)
    run_id: Mapped[int | None] = mapped_column(ForeignKey("runs.id", ondelete="SET NULL"), nullable=True)
    queue_job_id: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    found_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SarObservation(Base):
    """A Sentinel-1 date compared with an earlier one (docs/sentinel1.md); its change polygons are ``SarChange``."""

    __tablename__ = "sar_observations"
    __table_args__ = (UniqueConstraint("scene_key", "before_scene_key", name="sar_observations_pair_key"),)
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    scene_key: Mapped[str] = mapped_column(String(160))
    before_scene_key: Mapped[str] = mapped_column(String(160))
    sensor: Mapped[str] = mapped_column(String(16))
    acquired: Mapped[datetime] = mapped_column(DateTime(timezone=True))
    footprint = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)  # GiST: 0012
    polarisation: Mapped[str] = mapped_column(String(2))
    threshold_db: Mapped[float] = mapped_column(Float)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), server_default=func.now())


class SarChange(Base):
    """One change polygon of a Sentinel-1 pair: water_appeared, water_disappeared, decrease or increase."""

    __tablename__ = "sar_changes"
    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    sar_observation_id: Mapped[int] = mapped_column(ForeignKey("sar_observations.id", ondelete="CASCADE"),
                                                    index=True)
    cls: Mapped[str] = mapped_column(String(20))
    geom = mapped_column(Geometry("MULTIPOLYGON", srid=4326, spatial_index=False), nullable=False)  # GiST: 0012
