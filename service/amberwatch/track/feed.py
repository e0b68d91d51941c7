"""Atom (RFC 4287) feed of site events, with GeoRSS points so feed readers and GIS clients can map them."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime

ATOM = "http://www.w3.org/2005/Atom"
GEORSS = "http://www.georss.org/georss"
ET.register_namespace("", ATOM)
ET.register_namespace("georss", GEORSS)


def _iso(t: datetime) -> str:
    return t.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, f"{{{ATOM}}}{tag}", attrs)
    if text is not None:
        el.text = text
    return el


def event_title(row: dict) -> str:
    change = f"{row['from_status']} → {row['to_status']}" if row["from_status"] else f"new site ({row['to_status']})"
    return f"Site {row['site_id']}: {change}, {row['area_ha']:.2f} ha, {row['observed_at']:%Y-%m-%d}"


def atom_feed(rows: list[dict], base_url: str, self_url: str) -> bytes:
    """One entry per event row (as listed by the events API), linking to the site's page in the API."""
    feed = ET.Element(f"{{{ATOM}}}feed")
    _sub(feed, "id", f"{base_url}/api/events.atom")
    _sub(feed, "title", "AmberWatch: amber mining site events")
    _sub(feed, "subtitle", "Status changes of monitored amber mining sites (new, active, abandoned, recovering)")
    updated = max((r["created_at"] for r in rows), default=datetime.now(UTC))
    _sub(feed, "updated", _iso(updated))
    _sub(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    _sub(feed, "link", rel="alternate", href=f"{base_url}/api/events", type="application/geo+json")
    author = _sub(feed, "author")
    _sub(author, "name", "AmberWatch")
    _sub(feed, "generator", "AmberWatch")
    for r in rows:
        entry = _sub(feed, "entry")
        site_url = f"{base_url}/api/sites/{r['site_id']}"
        _sub(entry, "id", f"{site_url}#event-{r['event_id']}")
        _sub(entry, "title", event_title(r))
        _sub(entry, "updated", _iso(r["created_at"]))
        _sub(entry, "published", _iso(r["created_at"]))
        _sub(entry, "link", rel="alternate", href=site_url, type="application/geo+json")
        _sub(entry, "category", term=r["to_status"], label=r["to_status"])
        place = ", ".join(p for p in (r.get("hromada"), r.get("raion"), r.get("oblast")) if p)
        was = f" (was {r['from_status']})" if r["from_status"] else ""
        summary = (f"Observed {r['observed_at']:%Y-%m-%d}: site {r['site_id']} is {r['to_status']}{was}; "
                   f"area {r['area_ha']:.2f} ha; run {r['run_id']}.")
        if place:
            summary += f" Location: {place}."
        if r.get("protected_areas"):
            summary += f" Protected areas: {r['protected_areas']}."
        _sub(entry, "summary", summary, type="text")
        if r.get("geometry"):
            lon, lat = json.loads(r["geometry"])["coordinates"][:2]
            ET.SubElement(entry, f"{{{GEORSS}}}point").text = f"{lat:.7f} {lon:.7f}"
    return ET.tostring(feed, encoding="utf-8", xml_declaration=True)
