"""Acquisition dates from metadata strings, raster tags and file names (always timezone-aware UTC)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

_COMPACT = re.compile(r"(?<!\d)(\d{8})T(\d{6})(?!\d)")
_DAY = re.compile(r"(?<!\d)(\d{4})-?(\d{2})-?(\d{2})(?!\d)")
DATE_TAGS = ("ACQUISITION_DATETIME", "ACQUISITION_DATE", "DATETIME", "DATE_ACQUIRED", "ACQUIRED")


def _utc(dt: datetime) -> datetime:
    return dt.replace(tzinfo=UTC) if dt.tzinfo is None else dt.astimezone(UTC)


def parse_iso(text: str) -> datetime | None:
    """ISO 8601 (with Z, 1-9 fraction digits) or 'YYYY:MM:DD HH:MM:SS' (TIFF) or a name-style date."""
    text = text.strip().strip('"')
    m = re.fullmatch(r"(\d{4}-\d{2}-\d{2})[T ](\d{2}:\d{2}:\d{2})(\.\d+)?(Z|[+-]\d{2}:?\d{2})?", text)
    if m:
        frac = (m.group(3) or ".0")[:7]
        tz = m.group(4) or "Z"
        tz = "+00:00" if tz == "Z" else tz
        return _utc(datetime.fromisoformat(f"{m.group(1)}T{m.group(2)}{frac}{tz}"))
    m = re.fullmatch(r"(\d{4}):(\d{2}):(\d{2}) (\d{2}):(\d{2}):(\d{2})", text)
    if m:
        year, month, day, hour, minute, second = (int(g) for g in m.groups())
        return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    return date_from_name(text)


def _valid_day(year: int, month: int, day: int) -> datetime | None:
    if not 1972 <= year <= 2100:
        return None
    try:
        return datetime(year, month, day, tzinfo=UTC)
    except ValueError:
        return None


def date_from_name(name: str) -> datetime | None:
    """First ``YYYYMMDDTHHMMSS`` in a name, else the first plausible ``YYYYMMDD`` / ``YYYY-MM-DD``."""
    m = _COMPACT.search(name)
    if m:
        try:
            return datetime.strptime(m.group(1) + m.group(2), "%Y%m%d%H%M%S").replace(tzinfo=UTC)
        except ValueError:
            pass
    for m in _DAY.finditer(name):
        dt = _valid_day(int(m.group(1)), int(m.group(2)), int(m.group(3)))
        if dt:
            return dt
    return None


def date_from_tags(tags: dict[str, str]) -> datetime | None:
    upper = {k.upper(): v for k, v in tags.items()}
    for key in DATE_TAGS:
        if key in upper and upper[key].strip():
            dt = parse_iso(upper[key])
            if dt:
                return dt
    return None
