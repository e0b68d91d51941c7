"""One settings object for the whole service (environment prefix ``AMBERWATCH_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    """Runtime configuration, read from ``AMBERWATCH_*`` environment variables."""

    model_config = SettingsConfigDict(env_prefix="AMBERWATCH_", env_file=".env", extra="ignore")

    data_dir: Path = Field(Path("./var"), description="Where scenes, rasters, configs and the embedded database live.")
    database_url: str | None = Field(
        None, description="SQLAlchemy URL of an existing PostGIS database; unset = run an embedded cluster in data_dir."
    )
    embedded_pg_port: int = Field(54329, description="Loopback port of the embedded PostgreSQL cluster.")
    pg_bin_dir: Path = Field(Path("/usr/lib/postgresql/15/bin"), description="initdb/pg_ctl location.")
    host: str = "127.0.0.1"
    port: int = 8000
    public_url: str | None = Field(None, description="Public base URL clients call back (default http://host:port).")
    allowed_roots: list[Path] = Field(
        default_factory=lambda: [Path("."), PROJECT_ROOT / "demo", PROJECT_ROOT.parent / "shared" / "data"],
        description="Server-side paths that POST /api/scenes may read from.",
    )
    max_upload_mb: int = 2048
    # ingest limits (amberwatch.ingest.safety.IngestLimits), checked before any pixel is read
    max_pixels: int = Field(
        400_000_000, ge=1, description="Largest raster ingest accepts, width x height of one band (from the header).")
    max_archive_mb: int = Field(8192, ge=1, description="Largest total uncompressed size of a zip ingest reads (MB).")
    max_archive_ratio: int = Field(
        100, ge=1, description="Largest compression ratio of a zip member of 1 MB or more (zip-bomb guard).")
    max_metadata_mb: int = Field(4, ge=1, description="Largest metadata file ingest reads (MTD_*.xml, *_MTL.txt), MB.")
    l1c_cloud_mask: Literal["spectral", "s2cloudless"] = Field(
        "spectral", description="Sentinel-2 L1C cloud mask at ingest: the spectral test, or s2cloudless with cloud "
        "shadows (docs/models.md, 'Clouds'). L2A always uses its SCL.")
    models_dir: Path = Field(PROJECT_ROOT / "models" / "registry", description="Model registry root.")
    default_models: dict[str, str] = Field(
        default_factory=lambda: {"sentinel2": "s2-unet", "landsat": "landsat-unet", "vhr_rgb": "vhr-texty"},
        description="Default model name per sensor family.",
    )
    providers: list[str] | None = Field(
        None, description="onnxruntime execution providers in priority order; unset = CUDA when available, else CPU."
    )
    window_size: int = Field(512, description="Inference window (pixels).")
    # scale-out on Dask (docs/operations.md#scale-out-with-dask)
    dask_scheduler: str | None = Field(
        None, description="Dask scheduler (tcp://host:8786) for `detect --dask`; unset = a local cluster.")
    dask_workers: int = Field(2, ge=1, le=64, description="Worker processes of the local Dask cluster.")
    dask_tile_size: int = Field(
        2048, ge=64, le=16384, description="Pixels per side of one Dask task (rounded up to whole windows).")
    # GeoServer publishing (docs/operations.md#deploying-with-geoserver)
    geoserver_url: str | None = Field(
        None, description="GeoServer base URL (http://host:8080/geoserver); set = publish there after each run.")
    geoserver_user: str = Field("admin", description="GeoServer REST user.")
    geoserver_password: str = Field("geoserver", description="GeoServer REST password.")
    geoserver_workspace: str = Field("amberwatch", description="GeoServer workspace of our layers.")
    geoserver_db_host: str | None = Field(
        None, description="PostGIS host as GeoServer reaches it (default: the host of the store's URL).")
    geoserver_db_user: str | None = Field(
        None, description="Database user GeoServer's store logs in as (default: the store's; a read-only role is "
        "better, docs/operations.md#deploying-with-geoserver).")
    geoserver_db_password: str | None = Field(None, description="Password of AMBERWATCH_GEOSERVER_DB_USER.")
    min_mapping_unit_ha: float = Field(0.05, description="Smallest polygon kept after vectorizing.")
    mapserv_bin: Path = Path("/usr/lib/cgi-bin/mapserv")
    mapserv_workers: int = Field(
        2, ge=0, le=64, description="mapserv FastCGI workers that /ows starts and supervises; 0 = CGI per request.")
    published_run_layers: int = Field(
        5, ge=0, le=1000, description="Latest published runs also served as their own layer run_<id> (compatibility).")
    ogc_config_dir: Path = Field(
        PROJECT_ROOT / "ogc_config", description="Templates of the MapServer mapfile and the pygeoapi config.")
    # jobs (procrastinate queue in the same database)
    worker_concurrency: int = Field(1, ge=1, le=64, description="Jobs one worker runs at once (1 on 2 cores).")
    inprocess_worker: bool = Field(True, description="`serve`/`demo` run a worker in the same process.")
    job_max_attempts: int = Field(3, ge=1, le=20, description="Starts of a job before it is failed for good.")
    job_stalled_after_s: float = Field(
        20.0, ge=5.0, description="A job whose worker sent no heartbeat for this long is retried.")
    # security
    rate_limit_writes: str = Field("30/minute", description="Writes per API key and per client address.")
    rate_limit_expensive_reads: str = Field(
        "600/minute", description="Expensive reads (stats, feeds, maps, feature pages) per key and per address.")
    # portal (docs/portal.md)
    basemap_url: str | None = Field(
        None, description="XYZ raster tile URL ({z}/{x}/{y}) of the portal's basemap; unset = a plain style.")
    basemap_attribution: str = Field("", description="Attribution shown with the basemap (its licence).")
    places_paths: list[Path] = Field(
        default_factory=list, description="GeoJSON point files or folders of place names the portal search reads.")
    # alerts (docs/portal.md#alerts-for-an-area)
    webhook_allow_private: bool = Field(
        False, description="Let alert webhooks reach private, loopback and link-local addresses (tests only).")
    webhook_timeout_s: float = Field(10.0, gt=0, le=60, description="Timeout of one webhook delivery attempt.")
    webhook_max_attempts: int = Field(8, ge=1, le=20, description="Attempts of a webhook delivery (backoff 2^n s).")
    rate_limit_subscriptions: str = Field(
        "10/hour", description="New alert subscriptions per client address (and per API key).")
    # operations (docs/operations.md: Logs; Health, readiness and metrics)
    log_format: Literal["text", "json"] = Field(
        "text", description="Log lines of the CLI, serve and worker: text, or json (one object per line).")
    metrics_token: str | None = Field(
        None, description="When set, GET /metrics needs 'Authorization: Bearer <token>'; unset = open (keep "
        "/metrics on the internal network).")
    # crowd reports (docs/operations.md#crowd-reports)
    report_max_upload_mb: int = Field(60, ge=1, le=2048, description="Largest POST /api/reports body, all files.")
    report_max_files: int = Field(5, ge=1, le=20, description="Files per crowd report.")
    report_max_image_mb: int = Field(25, ge=1, description="Largest photo of a crowd report (MB).")
    report_max_image_pixels: int = Field(
        50_000_000, ge=1, description="Largest photo (width x height, read from its header before decoding).")
    report_max_video_mb: int = Field(50, ge=1, description="Largest video of a crowd report (MB).")
    report_max_video_s: float = Field(60.0, gt=0, description="Longest video of a crowd report (seconds).")
    report_ffmpeg_timeout_s: float = Field(30.0, gt=0, le=600, description="Time limit of one ffprobe/ffmpeg call.")
    report_retention_days: int = Field(
        90, ge=0, description="Days the personal data of a report (address, contact) is kept before the purge.")
    report_duplicate_hours: int = Field(72, ge=0, description="A report like one this recent is a duplicate.")
    report_duplicate_m: float = Field(300.0, ge=0, description="Same text within this distance = a duplicate.")
    rate_limit_reports: str = Field("10/hour", description="New crowd reports per client address.")
    # volunteer validation and field checks (docs/validation.md)
    validation_votes: int = Field(3, ge=1, le=15, description="Independent votes an item needs (N); agreed when "
                                  "at least ceil(2N/3) give the same answer other than unsure.")
    validation_uncertain_margin: float = Field(
        0.15, ge=0, le=1, description="Detections whose confidence is this close to the threshold are queued.")
    field_photo_max_mb: int = Field(15, ge=1, le=100, description="Largest photo of a field check (MB).")
    field_photo_max_pixels: int = Field(40_000_000, ge=1, description="Largest photo of a field check (pixels).")
    field_max_photos: int = Field(6, ge=0, le=20, description="Photos per field check.")

    # STAC monitors (docs/operations.md#stac-monitors-and-the-scheduler)
    stac_allowed_hosts: list[str] = Field(
        default_factory=lambda: ["earth-search.aws.element84.com", "sentinel-cogs.s3.us-west-2.amazonaws.com",
                                 "sentinel-s2-l1c.s3.amazonaws.com", "landsatlook.usgs.gov",
                                 "planetarycomputer.microsoft.com", "*.blob.core.windows.net",
                                 "stac.dataspace.copernicus.eu", "eodata.dataspace.copernicus.eu"],
        description="Hosts (host or host:port, shell patterns) monitors may search and read assets from; nothing "
        "else is ever fetched.")
    monitor_interval_hours: float = Field(120.0, gt=0, description="Hours between two searches of a monitor.")
    monitor_max_attempts: int = Field(3, ge=1, le=20, description="Attempts of one STAC item before it is failed.")
    monitor_retry_wait_s: float = Field(
        60.0, ge=0, description="Wait before the first retry of a failed item; doubled at each further attempt.")
    stac_api: bool = Field(True, description="Serve our scenes, runs and models as a STAC API at /stac (pgstac); "
                           "each published run and its scene are added to it.")

    @property
    def base_url(self) -> str:
        return (self.public_url or f"http://{self.host}:{self.port}").rstrip("/")

    def path(self, *parts: str) -> Path:
        """A path under the data directory (created on demand)."""
        p = self.data_dir.resolve().joinpath(*parts)
        p.parent.mkdir(parents=True, exist_ok=True)
        return p


@lru_cache
def get_settings() -> Settings:
    return Settings()
