"""``amberwatch s1 water|track``: Sentinel-1 open water of one scene, and radar change as tracking evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from amberwatch.cli.common import open_store, settings
from amberwatch.cli.errors import typer_app
from amberwatch.usecases import sentinel1

s1_app = typer_app("Sentinel-1 radar: open water, and change between dates as evidence under cloud "
                   "(docs/sentinel1.md).")


@s1_app.command("water")
def water(
    scene: Annotated[list[Path], typer.Argument(help="A GRD .SAFE/zip, or backscatter GeoTIFF(s) of one scene "
                                                     "(one per polarisation; the VH beside a VV is found).")],
    out: Annotated[Path, typer.Option(help="Water map GeoTIFF to write (1 water, 0 not, 255 no data).")],
) -> None:
    """Open water of one scene: Lee filter, per-scene Otsu thresholds, the s1-water model."""
    result = sentinel1.water_map(settings(), scene, out)
    shown = ", ".join(f"{p} {v:.2f} dB ({result.how[p]})" for p, v in result.thresholds_db.items())
    typer.echo(f"{result.scene_key}: thresholds {shown}; water {100 * result.water_fraction:.1f}% -> {out}")


@s1_app.command("track")
def track(
    before: Annotated[list[Path], typer.Option(help="The earlier date (repeat for VV and VH files).")],
    after: Annotated[list[Path], typer.Option(help="The later date, on the same grid.")],
) -> None:
    """Store the radar change between two dates and recompute the sites (evidence on cloudy Sentinel-2 dates)."""
    record = sentinel1.record_s1_pair(open_store(), settings(), before, after)
    changed = ", ".join(f"{k} {100 * v:.1f}%" for k, v in record.changed_fraction.items())
    typer.echo(f"{record.scene_key}: change threshold {record.threshold_db:.2f} dB; {changed}; "
               f"{record.events} new site events")
