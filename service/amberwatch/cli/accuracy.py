"""``amberwatch accuracy design|report``: the stratified sample of a model version's map and its accuracy report
(docs/accuracy.md)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from amberwatch.accuracy.summary import summary_text
from amberwatch.cli.common import open_store, settings
from amberwatch.cli.errors import typer_app
from amberwatch.errors import InputError
from amberwatch.usecases import accuracy

accuracy_app = typer_app("Accuracy assessment (Olofsson et al. 2014): stratified sample, error matrix, area estimate.")
ModelVersion = Annotated[str, typer.Option("--model-version", help="name@version, as `amberwatch models list` shows.")]


def parse_sizes(values: list[str]) -> dict[str, int]:
    """``["Rivne / mining=60", ...]`` -> ``{"Rivne / mining": 60}``."""
    sizes: dict[str, int] = {}
    for v in values:
        name, sep, number = v.rpartition("=")
        if not sep or not name.strip() or not number.strip().isdigit():
            raise InputError(f"--size {v[:80]!r}: write STRATUM=N, e.g. 'Rivne / mining=60'")
        sizes[name.strip()] = int(number)
    return sizes


@accuracy_app.command("design")
def design(
    model_version: ModelVersion,
    n_total: Annotated[int, typer.Option("--n-total", help="Sample size over all strata.")] = 500,
    minimum: Annotated[int, typer.Option("--min-per-stratum",
                                         help="Points for each rare stratum (Olofsson: 50-100).")] = 50,
    size: Annotated[list[str] | None, typer.Option(
        "--size", help="Fixed size of a stratum, STRATUM=N (repeat for every stratum; replaces the allocation).")
    ] = None,
    seed: Annotated[int | None, typer.Option(help="Random seed (default: a random one, recorded).")] = None,
) -> None:
    """Draw a stratified random sample (mining / not mining in each oblast) and send it to validators and field
    teams (validation items with source accuracy_sample)."""
    cfg = settings()
    result = accuracy.design(open_store(cfg), model_version, n_total=n_total, minimum=minimum, seed=seed,
                             sizes=parse_sizes(size or []), created_by="cli", votes_needed=cfg.validation_votes)
    typer.echo(f"design {result['design_id']} for {result['model_version']}: {result['n_total']} points, "
               f"seed {result['seed']}, queued for validation as sample {result['sample']!r}")
    typer.echo(f"{'stratum':40} {'area (ha)':>14} {'points':>7}")
    for s in result["strata"]:
        typer.echo(f"{s['name']:40} {s['area_ha']:14,.1f} {s['n_points']:7d}")


@accuracy_app.command("report")
def report(
    model_version: ModelVersion,
    out: Annotated[Path | None, typer.Option(help="Also write the report as JSON to this file.")] = None,
) -> None:
    """Estimate accuracy and the area-adjusted mining area from the sample's reference answers (field check >
    expert decision > agreed votes); stored as the model version's next report version."""
    if out is not None and out.suffix.lower() != ".json":
        raise InputError(f"--out {out.name!r}: the report is JSON, give a .json file")
    result = accuracy.report(open_store(), model_version, created_by="cli")
    if out is not None:
        out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    typer.echo(summary_text(result))
    if out is not None:
        typer.echo(f"wrote {out}")
