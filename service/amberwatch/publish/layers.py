"""The published layers (same names in WMS/WFS and OGC API Features) and their metadata."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from amberwatch.publish.catalog import REGION_EXTENT, Catalog, Extent, PublishedRun

SRS = ("EPSG:4326", "EPSG:3857", "EPSG:32635")
MAP_ALIAS = "amberwatch"

KEYWORDS = ("amber", "illegal mining", "Ukraine", "Rivne", "Zhytomyr", "Volyn", "remote sensing", "AmberWatch")
VERSIONS_NOTE = (
    "Runs are versions: every published detection run is one version of the data, kept as its own layer "
    "run_<id>; a run becomes visible only once it is published, all at once. "
    "In the AmberWatch demo the mining is simulated: demo detections are not evidence of real mining."
)

SERVICE = {
    "title": "AmberWatch: amber mining in north-west Ukraine",
    "abstract": (
        "Places of amber mining (bare-sand pits, spoil and water-filled ponds) detected on satellite imagery of "
        "Volyn, Rivne and Zhytomyr oblasts, published as open, versioned layers. " + VERSIONS_NOTE
    ),
    "keywords": list(KEYWORDS),
    "organization": "AmberWatch",
    "license": "CC-BY-4.0",
    "license_url": "https://creativecommons.org/licenses/by/4.0/",
}


@dataclass(frozen=True)
class Temporal:
    begin: str | None
    end: str | None


@dataclass(frozen=True)
class WmsTime:
    item: str
    extent: str
    default: str


@dataclass(frozen=True)
class Layer:
    name: str
    table: str  # view in the database
    id_column: str
    kind: str  # "mining_sites" or "detections": selects styles and GetFeatureInfo templates
    title: str
    abstract: str
    keywords: list[str]
    extent: Extent
    time_item: str | None = None
    time: WmsTime | None = None
    temporal: Temporal | None = None
    group: str | None = None


MAX_DATES_LISTED = 30


def wms_time(dates: tuple[str, ...]) -> WmsTime:
    """WMS TIME on ``observed_at``: every day from the first to the last acquisition date (UTC), default the last.

    A continuous daily extent, not a list of dates: MapServer 8 answers a TIME it finds outside the extent with
    the default date, and it only matches listed values exactly (``2024-05-01T09:30Z`` is not ``2024-05-01``).
    """
    return WmsTime(item="observed_at", extent=f"{dates[0]}/{dates[-1]}T23:59:59Z/P1D", default=dates[-1])


def _iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC (written unquoted into the pygeoapi YAML, where it must parse as a timestamp)."""
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else None


def _run_layer(run: PublishedRun) -> Layer:
    when = f"observed {', '.join(run.dates)}" if run.dates else "no detections"
    published = f", published {run.published_at:%Y-%m-%d %H:%M UTC}" if run.published_at else ""
    model = f"model {run.model_version}" if run.model_version else "unknown model"
    return Layer(
        name=run.layer_name,
        table=run.layer_name,
        id_column="id",
        kind="detections",
        title=f"Detections of run {run.id} ({model}, {when})",
        abstract=(
            f"The {run.n_detections} polygons (pits and ponds) detected by run {run.id} ({model}, {when}{published}). "
            + VERSIONS_NOTE
        ),
        keywords=[*KEYWORDS, "detections", f"run {run.id}"],
        extent=run.extent or REGION_EXTENT,
        time_item="observed_at",
        temporal=Temporal(_iso(run.observed_from), _iso(run.observed_to)),
        group="/runs",
    )


def build_layers(catalog: Catalog) -> list[Layer]:
    """``mining_sites``, ``detections`` and one ``run_<id>`` per published run."""
    time, dates_note = None, ""
    if catalog.dates:
        time = wms_time(catalog.dates)
        shown = ", ".join(catalog.dates[-MAX_DATES_LISTED:])
        more = f" (latest {MAX_DATES_LISTED} of {len(catalog.dates)})" if len(catalog.dates) > MAX_DATES_LISTED else ""
        dates_note = f" Acquisition dates with detections{more}: {shown}."
    first = min((r.observed_from for r in catalog.runs if r.observed_from), default=None)
    last = max((r.observed_to for r in catalog.runs if r.observed_to), default=None)
    layers = [
        Layer(
            name="mining_sites",
            table="mining_sites",
            id_column="site_id",
            kind="mining_sites",
            title="Amber mining sites (latest state)",
            abstract=(
                "The latest state of every amber-mining site followed across runs: status (new, active, abandoned, "
                "recovering), first and last seen, current and largest area, pit and pond area, confidence, "
                "oblast/raion/hromada and protected areas. " + VERSIONS_NOTE
            ),
            keywords=[*KEYWORDS, "mining sites"],
            extent=catalog.sites_extent or REGION_EXTENT,
            time_item="last_observed",
            temporal=Temporal(_iso(catalog.sites_from), _iso(catalog.sites_to)),
        ),
        Layer(
            name="detections",
            table="published_detections",
            id_column="id",
            kind="detections",
            title="Amber mining detections (all published runs)",
            abstract=(
                "Every polygon (bare-sand pit or pond) detected by every published run, with run_id, model_version "
                "and observed_at (scene acquisition time). WMS: the TIME dimension selects the acquisition date "
                "(default: the latest; a TIME outside the extent also gets the latest)." + dates_note + " "
                + VERSIONS_NOTE
            ),
            keywords=[*KEYWORDS, "detections"],
            extent=catalog.detections_extent or REGION_EXTENT,
            time_item="observed_at",
            time=time,
            temporal=Temporal(_iso(first), _iso(last)),
        ),
    ]
    layers += [_run_layer(run) for run in catalog.runs]
    return layers
