"""Statistics reports over the monitored sites: the groupings and formats offered, and the CSV rendering.

The numbers come from ``amberwatch.store.queries.stats``; a report is ``{"by": ..., "groups": [...], "total": {...}}``.
"""

from __future__ import annotations

import csv
import io

from amberwatch.errors import InputError

BY = ("oblast", "raion", "hromada", "year")
FORMATS = ("json", "csv")


def check_by(by: str) -> str:
    if by not in BY:
        raise InputError(f"unknown grouping {by!r}: use one of {', '.join(BY)}")
    return by


def check_format(fmt: str) -> str:
    if fmt not in FORMATS:
        raise InputError(f"unknown format {fmt!r}: use one of {', '.join(FORMATS)}")
    return fmt


def stats_csv(stats: dict) -> str:
    """CSV: one row per group, then a row whose group column is ``total``."""
    by = stats["by"]
    columns = [by, *[k for k in stats["total"] if k != by]]
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=columns, lineterminator="\n")
    writer.writeheader()
    for row in stats["groups"]:
        writer.writerow(row)
    writer.writerow({**stats["total"], by: "total"})
    return buf.getvalue()
