"""Printable reports: a site's evidence report and the disturbed-area report, as HTML and as PDF (WeasyPrint).

Both render one HTML template of the portal in Ukrainian or English. Images are embedded as data: URIs and
WeasyPrint fetches nothing else (no URL leaves the server while a PDF is made). A report carries its generation
time and a stable document ID: the same site state (or the same statistics and parameters) gives the same ID.
"""

from __future__ import annotations

import base64
import hashlib
import json
import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from amberwatch import __version__, portal
from amberwatch.errors import InputError, NotFoundError
from amberwatch.store.db import Store
from amberwatch.store.queries import portal as portal_queries
from amberwatch.usecases import crowd as crowd_uc
from amberwatch.usecases import monitoring
from amberwatch.usecases import portal as portal_uc
from amberwatch.usecases import validation as validation_uc

AREA_UNITS = ("oblast", "raion", "hromada", "year")
MIN_YEAR, MAX_YEAR = 1970, 2100


def _document_id(prefix: str, payload: Any) -> str:
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:12].upper()
    return f"AW-{prefix}-{digest[:4]}-{digest[4:8]}-{digest[8:]}"


def to_pdf(html: str) -> bytes:
    """The PDF of a report's HTML; WeasyPrint may read data: URIs only (the templates embed every image)."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    fetcher = URLFetcher(allowed_protocols=("data",), allow_redirects=False, timeout=1)
    pdf: bytes = HTML(string=html, url_fetcher=fetcher).write_pdf()
    return pdf


def _png_data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


# -- location map (inline SVG) ---------------------------------------------------------------------
def _rings(geometry: dict[str, Any]) -> list[list[tuple[float, float]]]:
    polys = geometry["coordinates"] if geometry["type"] == "MultiPolygon" else [geometry["coordinates"]]
    return [[(float(x), float(y)) for x, y in ring] for poly in polys for ring in poly]


def location_svg(outline: dict[str, Any] | None, site: dict[str, Any] | None, centroid: tuple[float, float],
                 size: int = 260) -> str:
    """A small north-up map: the admin unit's outline, the site's extent and a marker (equirectangular)."""
    lon0, lat0 = centroid
    rings = _rings(outline) if outline else []
    site_rings = _rings(site) if site else []
    pts = [p for r in rings + site_rings for p in r] or [(lon0 - 0.05, lat0 - 0.05), (lon0 + 0.05, lat0 + 0.05)]
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    kx = math.cos(math.radians(lat0))
    w, h = (max(xs) - min(xs)) * kx or 0.01, (max(ys) - min(ys)) or 0.01
    scale = (size - 20) / max(w, h)

    def px(lon: float, lat: float) -> str:
        return f"{10 + (lon - min(xs)) * kx * scale:.1f},{10 + (max(ys) - lat) * scale:.1f}"

    height = int(h * scale + 20)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{size}" height="{height}" '
             f'viewBox="0 0 {size} {height}" role="img">',
             f'<rect width="{size}" height="{height}" fill="#f4f1ea"/>']
    for ring in rings:
        parts.append(f'<polygon points="{" ".join(px(*p) for p in ring)}" fill="#ffffff" stroke="#555" '
                     'stroke-width="1"/>')
    for ring in site_rings:
        parts.append(f'<polygon points="{" ".join(px(*p) for p in ring)}" fill="#e31a1c" stroke="#99000d"/>')
    cx, cy = px(lon0, lat0).split(",")
    parts.append(f'<circle cx="{cx}" cy="{cy}" r="6" fill="none" stroke="#e31a1c" stroke-width="2.5"/>')
    parts.append("</svg>")
    return "".join(parts)


# -- the site's evidence report ---------------------------------------------------------------------
@dataclass
class Report:
    html: str
    document_id: str


def people_checks(store: Store, site_id: int) -> dict[str, Any]:
    """What people found at a site, for its page and its evidence report: ``validation`` (status, field checks) and
    ``crowd_reports`` (approved reports nearby)."""
    return {"validation": validation_uc.site_validation(store, site_id),
            "crowd_reports": crowd_uc.near_site(store, site_id)}


def site_report(store: Store, site_id: int, lang: str, base_url: str, now: datetime | None = None) -> Report:
    """The evidence report of one site in ``lang`` (HTML for the browser and for the PDF)."""
    page = portal_uc.site_page(store, site_id)
    site = page.site
    people = people_checks(store, site_id)
    validation, crowd = people["validation"], people["crowd_reports"]
    doc_id = _document_id(f"S{site_id}", {**{k: site.get(k) for k in (
        "site_id", "status", "status_since", "first_seen", "last_seen", "last_observed", "max_area_ha", "area_ha",
        "last_run_id", "oblast", "raion", "hromada", "protected_areas", "merged_into_id")},
        "validation": validation["status"], "field_checks": [c["id"] for c in validation["field_checks"]],
        "reports": [r["id"] for r in crowd]})
    chips: dict[str, str | None] = {}
    for which in portal_uc.CHIPS:
        try:
            chips[which] = _png_data_uri(portal_uc.chip_png(store, site_id, which, size=300))
        except NotFoundError:
            chips[which] = None
    outline = None
    unit_name = None
    for kind in ("oblast", "raion", "hromada"):
        if site.get(kind):
            with store.session() as session:
                text = portal_queries.admin_outline(session, kind, site[kind], 0.005)
            if text:
                outline, unit_name = json.loads(text), site[kind]
                break
    svg = location_svg(outline, page.geometry or page.max_extent, page.centroid) if page.max_extent else None
    html = portal.render("report_site.html", lang, page=page, site=site, chips=chips, location_svg=svg,
                         unit_name=unit_name, document_id=doc_id, base_url=base_url, **people,
                         iso_day=portal_uc.iso_day,
                         generated=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"), version=__version__,
                         colours=portal_uc.STATUS_COLOURS)
    return Report(html, doc_id)


# -- the disturbed-area report ----------------------------------------------------------------------
def parse_year(name: str, value: str | None) -> int | None:
    if value is None or value == "":
        return None
    if not (value.isascii() and value.isdigit() and len(value) == 4 and MIN_YEAR <= int(value) <= MAX_YEAR):
        raise InputError(f"{name}={value[:20]!r}: expected a year between {MIN_YEAR} and {MAX_YEAR}")
    return int(value)


def check_unit(unit: str) -> str:
    if unit not in AREA_UNITS:
        raise InputError(f"unit={unit[:20]!r}: use one of {', '.join(AREA_UNITS)}")
    return unit


@dataclass
class AreaReport:
    unit: str
    year_from: int | None
    year_to: int | None
    rows: list[dict[str, Any]]  # one per unit (or year), with the statistics columns and the period columns
    total: dict[str, Any]
    years: list[dict[str, Any]]  # the by-year statistics inside the period
    stats_total: dict[str, Any]  # /api/stats total of the same grouping (to date)


def area_report_data(store: Store, unit: str, year_from: int | None, year_to: int | None) -> AreaReport:
    """The numbers of the area report. Without a period its totals are those of ``/api/stats?by=unit``."""
    check_unit(unit)
    if year_from and year_to and year_to < year_from:
        raise InputError(f"to={year_to} is before from={year_from}")

    def inside(year: int) -> bool:
        return (year_from is None or year >= year_from) and (year_to is None or year <= year_to)

    by_year = monitoring.stats(store, "year")
    years = [g for g in by_year["groups"] if inside(int(g["year"]))]
    if unit == "year":
        if year_from is None and year_to is None:
            total = dict(by_year["total"])
        else:
            total = {k: (round(sum(float(g[k]) for g in years), 4) if k.endswith("_ha") else
                         sum(int(g[k]) for g in years)) for k in by_year["total"]}
        return AreaReport(unit, year_from, year_to, years, total, years, by_year["total"])

    stats = monitoring.stats(store, unit)
    with store.session() as session:
        per_year = portal_queries.area_by_unit_and_year(session, unit)
    period: dict[str, dict[str, float]] = {}
    for r in per_year:
        if inside(int(r["year"])):
            p = period.setdefault(r["unit"], {"period_area_ha": 0.0, "period_new_sites": 0})
            p["period_area_ha"] += float(r["disturbed_area_ha"])
            p["period_new_sites"] += int(r["new_sites"])
    rows = []
    for g in stats["groups"]:
        p = period.get(g[unit], {"period_area_ha": 0.0, "period_new_sites": 0})
        rows.append({**g, "period_area_ha": round(p["period_area_ha"], 4),
                     "period_new_sites": int(p["period_new_sites"])})
    total = {**stats["total"], "period_area_ha": round(sum(r["period_area_ha"] for r in rows), 4),
             "period_new_sites": sum(r["period_new_sites"] for r in rows)}
    return AreaReport(unit, year_from, year_to, rows, total, years, stats["total"])


def bars_svg(labels: list[str], values: list[float], colour: str = "#d95f0e", width: int = 620) -> str:
    """A horizontal bar chart as inline SVG (for the PDF, which runs no scripts)."""
    if not values:
        return ""
    row, left = 20, 170
    top = max(values) or 1.0
    height = row * len(values) + 10
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
             f'viewBox="0 0 {width} {height}" role="img">']
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        y = 5 + i * row
        w = (width - left - 80) * value / top
        safe = label.replace("&", "&amp;").replace("<", "&lt;")[:28]
        parts.append(f'<text x="{left - 6}" y="{y + 13}" text-anchor="end" font-size="11">{safe}</text>')
        parts.append(f'<rect x="{left}" y="{y + 2}" width="{w:.1f}" height="{row - 6}" fill="{colour}"/>')
        parts.append(f'<text x="{left + w + 4:.1f}" y="{y + 13}" font-size="11">{portal.format_number(value)}</text>')
    parts.append("</svg>")
    return "".join(parts)


def area_report(store: Store, unit: str, year_from: int | None, year_to: int | None, lang: str,
                now: datetime | None = None) -> Report:
    data = area_report_data(store, unit, year_from, year_to)
    doc_id = _document_id(f"A{unit[0].upper()}", {"unit": unit, "from": year_from, "to": year_to,
                                                   "rows": data.rows, "total": data.total})
    t = portal.translator(lang)
    labels = [str(r[unit]) if r[unit] != "(unknown)" else t("stats.unknown") for r in data.rows]
    chart = bars_svg(labels, [float(r["disturbed_area_ha"]) for r in data.rows])
    html = portal.render("report_area.html", lang, data=data, chart=chart, document_id=doc_id,
                         generated=(now or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC"), version=__version__)
    return Report(html, doc_id)
