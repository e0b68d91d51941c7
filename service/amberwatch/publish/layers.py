"""The published layers (same names in WMS/WFS and OGC API Features) and their metadata."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from amberwatch.publish.catalog import (
    ADMIN_VIEWS,
    HISTORY_VIEW,
    REGION_EXTENT,
    REPORTS_VIEW,
    Catalog,
    Extent,
    PublishedRun,
    SourceStats,
)

SRS = ("EPSG:4326", "EPSG:3857", "EPSG:32635")
MAP_ALIAS = "amberwatch"

KEYWORDS = ("amber", "illegal mining", "Ukraine", "Rivne", "Zhytomyr", "Volyn", "remote sensing", "AmberWatch")
VERSIONS_NOTE = (
    "Runs are versions: every published detection run is one version of the data, selected in the detections "
    "layer by run_id (WMS: DIM_RUN=<id>; WFS 2.0: FILTER on run_id; OGC API Features: run_id=<id> or a CQL2 filter; "
    "/api/versions lists the runs with these links); the latest runs are also their own layer run_<id>. "
    "A run becomes visible only once it is published, all at once. "
    "In the AmberWatch demo the mining is simulated: demo detections are not evidence of real mining."
)
RULES_DOC = "docs/monitoring.md in the AmberWatch repository"
STATUS_NOTE = (
    "Status (rules in " + RULES_DOC + ", 'Status rules'): "
    "new = first detection of the site; "
    "active = seen again with fresh bare sand (pit area at least 25 % of its peak, or pits grew) or a grown footprint; "
    "abandoned = no fresh sand and no growth, while more than half of the peak disturbed area is still bare or "
    "flooded; "
    "recovering = nothing detected any more on a clear observation, or at most half of the peak disturbed area left "
    "(vegetation returning). Colours: new red, active orange, abandoned grey, recovering green."
)
LICENSE = (
    "Detections: CC BY 4.0 AmberWatch; admin boundaries: see the loaded layers' sources (ODbL / CC BY 3.0 IGO)"
)

SERVICE = {
    "title": "AmberWatch: amber mining in north-west Ukraine",
    "abstract": (
        "Places of amber mining (bare-sand pits, spoil and water-filled ponds) detected on satellite imagery of "
        "Volyn, Rivne and Zhytomyr oblasts, published as open, versioned layers: mining sites with their status, "
        "status changes (events), the history of every site, detections per run, and the admin units and "
        "protected areas used to place the sites. " + VERSIONS_NOTE
    ),
    "keywords": list(KEYWORDS),
    "organization": "AmberWatch",
    "license": LICENSE,
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
    default: str  # a date or a period


@dataclass(frozen=True)
class Layer:
    name: str
    table: str  # table or view in the database
    id_column: str
    kind: str  # selects the MapServer classes (classes_<kind>.map.j2) and GetFeatureInfo templates (<kind>.html)
    title: str
    abstract: str
    keywords: list[str]
    extent: Extent
    time_item: str | None = None  # OGC API Features datetime filter
    time: WmsTime | None = None  # WMS TIME dimension
    temporal: Temporal | None = None
    group: str | None = None
    geometry: str = "polygon"  # "polygon" or "point"
    label_item: str | None = None  # WMS labels
    gml_types: dict[str, str] = field(default_factory=dict)  # column -> MapServer gml_<column>_type
    id_type: str = ""  # PostgreSQL type of id_column (the /ogcapi guard answers 404 to ids it cannot hold)


# MapServer's automatic types declare timestamps gml:TimeInstantType in WFS 2.0 (its "DateTime" type too): GDAL
# (so QGIS's OGR-based readers) then ignores the whole schema, guesses the fields from the first features (fields
# that are NULL there vanish) and names them "first_seen|timePosition". As strings ("2021-05-10 09:20:00+00") the
# schema is used as published. Booleans: "auto" declares them integer but writes true/false in GML and 0 for
# true in GeoJSON, "Boolean" also writes 0 for true in GeoJSON; as strings they read "true"/"false" everywhere.
_GML_TYPES = {
    "timestamp with time zone": "Character",
    "timestamp without time zone": "Character",
    "date": "Character",
    "boolean": "Character",
}


def gml_types(columns: dict[str, str]) -> dict[str, str]:
    """The MapServer ``gml_<item>_type`` overrides for a relation's columns (name -> PostgreSQL type)."""
    return {name: _GML_TYPES[kind] for name, kind in columns.items() if kind in _GML_TYPES}


MAX_DATES_LISTED = 30


def wms_time(dates: tuple[str, ...], item: str = "observed_at", default_latest: bool = True) -> WmsTime:
    """WMS TIME on ``item``: every day from the first to the last date (UTC); default the last date, or with
    ``default_latest=False`` the whole period (a request without TIME then draws every feature).

    A continuous daily extent, not a list of dates: MapServer 8 answers a TIME it finds outside the extent with
    the default date, and it only matches listed values exactly (``2024-05-01T09:30Z`` is not ``2024-05-01``).
    MapServer refuses a GetMap without TIME on a layer that has a time extent but no default.
    """
    period = f"{dates[0]}/{dates[-1]}T23:59:59Z"
    return WmsTime(item=item, extent=f"{period}/P1D", default=dates[-1] if default_latest else period)


def _iso(value: datetime | None) -> str | None:
    """RFC 3339 in UTC (written unquoted into the pygeoapi YAML, where it must parse as a timestamp)."""
    return value.astimezone(UTC).isoformat(timespec="seconds") if value is not None else None


def _dates_note(dates: tuple[str, ...], what: str) -> str:
    if not dates:
        return ""
    shown = ", ".join(dates[-MAX_DATES_LISTED:])
    more = f" (latest {MAX_DATES_LISTED} of {len(dates)})" if len(dates) > MAX_DATES_LISTED else ""
    return f" {what}{more}: {shown}."


def _time_note(stats: SourceStats, column: str, default_latest: bool = True, meaning: str = "") -> str:
    if not stats.dates:
        return f" WMS TIME on {column}{meaning} appears once the layer has features."
    default = "default: the latest date" if default_latest else "default: the whole period, every feature"
    period = f"{stats.dates[0][:4]}-01-01/{stats.dates[-1][:4]}-12-31"
    return (
        f" WMS TIME on {column}{meaning} ({default}; a range such as {period} "
        f"selects a period; a TIME outside the extent gets the default); "
        f"OGC API Features: datetime=... filters on {column}."
    )


def _empty_note(stats: SourceStats, what: str) -> str:
    return f" Empty until {what}." if stats.count == 0 else ""


def _timed(stats: SourceStats, item: str, default_latest: bool = True) -> dict:
    return {
        "time_item": item,
        "time": wms_time(stats.dates, item, default_latest) if stats.dates else None,
        "temporal": Temporal(_iso(stats.first), _iso(stats.last)),
    }


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


def _sites_layer(catalog: Catalog) -> Layer:
    stats = catalog.sites_first_seen
    return Layer(
        name="mining_sites",
        table="mining_sites",
        id_column="site_id",
        kind="mining_sites",
        title="Amber mining sites (latest state, coloured by status)",
        abstract=(
            "The latest state of every amber-mining site followed across runs (one polygon per site: its current "
            "extent; merged sites are left out): site_id (in OGC API Features the feature id), status and "
            "status_since, first_seen, last_seen, last_observed "
            "(last clear observation), current and largest area, pit and pond area, growth rate (ha/year), degree "
            "of disturbance, confidence, number of observations, first and last run, oblast/raion/hromada, the "
            "protected areas touched and the distance to the nearest one (m). " + STATUS_NOTE
            + _time_note(stats, "first_seen", default_latest=False, meaning=" (when the site was first detected)")
            + _empty_note(stats, "a published run finds mining") + " " + VERSIONS_NOTE
        ),
        keywords=[*KEYWORDS, "mining sites", "status"],
        extent=catalog.sites_extent or REGION_EXTENT,
        time_item="first_seen",
        time=wms_time(stats.dates, "first_seen", default_latest=False) if stats.dates else None,
        temporal=Temporal(_iso(catalog.sites_from), _iso(catalog.sites_to)),
    )


def _detections_layer(catalog: Catalog) -> Layer:
    first = min((r.observed_from for r in catalog.runs if r.observed_from), default=None)
    last = max((r.observed_to for r in catalog.runs if r.observed_to), default=None)
    return Layer(
        name="detections",
        table="published_detections",
        id_column="id",
        kind="detections",
        title="Amber mining detections (all published runs)",
        abstract=(
            "Every polygon (bare-sand pit or pond) detected by every published run, with run_id, model_version "
            "and observed_at (scene acquisition time). WMS: the TIME dimension selects the acquisition date "
            "(default: the latest; a TIME outside the extent also gets the latest)."
            + _dates_note(catalog.dates, "Acquisition dates with detections") + " " + VERSIONS_NOTE
        ),
        keywords=[*KEYWORDS, "detections"],
        extent=catalog.detections_extent or REGION_EXTENT,
        time_item="observed_at",
        time=wms_time(catalog.dates) if catalog.dates else None,
        temporal=Temporal(_iso(first), _iso(last)),
    )


def _events_layer(catalog: Catalog) -> Layer:
    stats = catalog.events
    return Layer(
        name="events",
        table="site_events",
        id_column="event_id",
        kind="events",
        title="Site status changes (events), coloured by the new status",
        abstract=(
            "One point per status change of a mining site, placed on the site as it was at that date: site_id, "
            "observed_at (scene date), from_status (empty when the site appeared) and to_status, area_ha at that "
            "date, run_id, created_at (when AmberWatch recorded the change), and the site's oblast, raion, hromada "
            "and protected areas. to_status new = a site appeared; active = digging (again); abandoned = digging "
            "stopped, pits and ponds remain; recovering = vegetation returning. " + STATUS_NOTE
            + _time_note(stats, "observed_at") + _dates_note(stats.dates, "Dates with events")
            + " Also as GeoJSON (/api/events) and an Atom feed (/api/events.atom)."
            + _empty_note(stats, "a published run changes a site's status")
        ),
        keywords=[*KEYWORDS, "events", "status change", "alerts"],
        extent=stats.extent or REGION_EXTENT,
        geometry="point",
        **_timed(stats, "observed_at"),
    )


def _history_layer(catalog: Catalog) -> Layer:
    stats = catalog.history
    return Layer(
        name="site_history",
        table=HISTORY_VIEW,
        id_column="observation_id",
        kind="site_history",
        title="Site history: extent and status of every site at every observation date",
        abstract=(
            "One polygon per site and observation date on which something was detected: that date's extent "
            "(pits and ponds), site_id, run_id, observed_at, the status after that date, area_ha, pit_area_ha, "
            "pond_area_ha and cumulative_area_ha (everything disturbed so far). Clear observations where nothing "
            "was detected have no geometry and are not in this layer; GET /api/sites/{id} lists them. "
            + STATUS_NOTE + _time_note(stats, "observed_at")
            + _empty_note(stats, "a published run finds mining")
        ),
        keywords=[*KEYWORDS, "site history", "time series"],
        extent=stats.extent or REGION_EXTENT,
        **_timed(stats, "observed_at"),
    )


_ADMIN = {
    # kind: (layer name, title, what, licence note)
    "oblast": ("oblasts", "Oblasts (regions)", "oblast",
               "geoBoundaries ADM1 (ODbL, derived from OpenStreetMap)"),
    "raion": ("raions", "Raions (districts)", "raion",
              "the loaded raion file (check its licence before redistributing)"),
    "hromada": ("hromadas", "Hromadas (municipalities)", "hromada",
                "KSE/OCHA hromadas (CC BY 3.0 IGO)"),
}


ADMIN_LAYERS = {kind: spec[0] for kind, spec in _ADMIN.items()}  # kind -> layer name


def _admin_layer(catalog: Catalog, kind: str) -> Layer:
    name, title, what, licence = _ADMIN[kind]
    stats = catalog.admin.get(kind, SourceStats())
    return Layer(
        name=name,
        table=ADMIN_VIEWS[kind],
        id_column="id",
        kind="admin_units",
        title=f"{title}: outlines with names",
        abstract=(
            f"The {what} boundaries AmberWatch uses to give every mining site its {what} (the unit holding the "
            f"largest part of the site's footprint): name, code, parent unit, source (the file it was loaded from), "
            f"kind. Loaded by the operator with 'amberwatch layers load {what} FILE' (usually {licence}); the "
            f"licence of the source file applies. See {RULES_DOC}."
            + _empty_note(stats, f"an operator loads a {what} layer")
        ),
        keywords=[*KEYWORDS, "administrative boundaries", what],
        extent=stats.extent or REGION_EXTENT,
        label_item="name",
    )


def _protected_layer(catalog: Catalog) -> Layer:
    stats = catalog.protected_areas
    return Layer(
        name="protected_areas",
        table="protected_areas",
        id_column="id",
        kind="protected_areas",
        title="Protected areas (hatched green)",
        abstract=(
            "Protected areas (Ramsar wetlands, nature reserves and others) that AmberWatch checks every mining site "
            "against: a site touching one has in_protected_area = true and lists its name in protected_areas; "
            "protected_distance_m is the distance to the nearest one. Attributes: name, category, code, source "
            "(the dataset it was loaded from, e.g. Ramsar, ODbL); the source's licence applies. Loaded by the "
            f"operator with 'amberwatch layers load protected_area PATH'. See {RULES_DOC}."
            + _empty_note(stats, "an operator loads protected areas")
        ),
        keywords=[*KEYWORDS, "protected areas", "Ramsar", "nature reserve"],
        extent=stats.extent or REGION_EXTENT,
        label_item="name",
    )


def _reports_layer(catalog: Catalog) -> Layer:
    stats = catalog.reports
    return Layer(
        name="reports",
        table=REPORTS_VIEW,
        id_column="id",
        kind="reports",
        title="Crowd reports of amber mining (approved by a moderator)",
        abstract=(
            "Reports sent by people on the ground through the AmberWatch portal or POST /api/reports, published "
            "once a moderator approved them: id, what the reporter wrote (text), observed_at (when they saw it, "
            "if given), reported_at, approved_at, location_source (map click, device GPS or the photo's EXIF), "
            "n_media and media (the URLs of the re-encoded photos and videos under /api/reports). No personal "
            "data: addresses and contacts are never published. Reports are what people say they saw, checked "
            "by a moderator, not verified detections. OGC API Features: datetime=... filters on reported_at."
            + _empty_note(stats, "a moderator approves a report")
        ),
        keywords=[*KEYWORDS, "crowd reports", "citizen science"],
        extent=stats.extent or REGION_EXTENT,
        geometry="point",
        time_item="reported_at",
        temporal=Temporal(_iso(stats.first), _iso(stats.last)),
    )


def recent_runs(catalog: Catalog, run_layers: int | None) -> tuple[PublishedRun, ...]:
    """The published runs that also get their own ``run_<id>`` layer: the latest ``run_layers`` (None = all)."""
    if run_layers is None:
        return catalog.runs
    return catalog.runs[-run_layers:] if run_layers > 0 else ()


def build_layers(catalog: Catalog, run_layers: int | None = None) -> list[Layer]:
    """``mining_sites``, ``detections``, one ``run_<id>`` per published run (the latest ``run_layers`` of them;
    None = all), then ``events``, ``site_history``, ``oblasts``, ``raions``, ``hromadas`` and ``protected_areas``
    (also while their tables are empty)."""
    layers = [
        _sites_layer(catalog),
        _detections_layer(catalog),
        *(_run_layer(run) for run in recent_runs(catalog, run_layers)),
        _events_layer(catalog),
        _history_layer(catalog),
        *(_admin_layer(catalog, kind) for kind in ADMIN_VIEWS),
        _protected_layer(catalog),
        _reports_layer(catalog),
    ]
    def columns(layer: Layer) -> dict[str, str]:
        source = "published_detections" if layer.group == "/runs" else layer.table  # run_<id> = its rows
        return catalog.column_types.get(source, {})

    return [
        replace(layer, gml_types=gml_types(columns(layer)), id_type=columns(layer).get(layer.id_column, ""))
        for layer in layers
    ]
