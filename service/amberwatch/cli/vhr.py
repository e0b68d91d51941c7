"""``amberwatch vhr ...``: score RGB chips with the very-high-resolution classifier (``amberwatch.vhr``)."""

from __future__ import annotations

import csv
import logging
from pathlib import Path
from typing import Annotated

import typer

from amberwatch.cli.common import settings
from amberwatch.errors import AmberWatchError, InputError
from amberwatch.vhr.chips import list_files, score_files
from amberwatch.vhr.model import load_vhr_model

app = typer.Typer(help="Very-high-resolution RGB classifier (Texty method).", no_args_is_help=True)
log = logging.getLogger(__name__)

CSV_COLUMNS = ("file", "probability", "positive")


@app.callback()
def vhr_callback() -> None:
    """Very-high-resolution RGB classifier (Texty method): score chips."""


@app.command("score-chips")
def score_chips_command(
    dir: Annotated[Path, typer.Argument(help="Folder of RGB chips (~0.37 m/px; PNG/JPEG/TIFF), searched recursively.")],  # noqa: A002
    out: Annotated[Path, typer.Option("--out", help="CSV to write: file,probability,positive.")],
    model: Annotated[Path | None, typer.Option("--model", help="Model folder (default: newest vhr-texty).")] = None,
) -> None:
    """Score every image in DIR; one CSV row per readable image (positive = 1 at the model's threshold).

    Files that are not readable RGB images are skipped with a warning listing them; exit code 2 when no file
    is readable.
    """
    try:
        files = list_files(dir)
        if not files:
            raise InputError(f"{dir} contains no files")
        vhr = load_vhr_model(model, models_dir=None if model else settings().models_dir)
        scores, skipped = score_files(files, vhr, progress=True)
        for skip in skipped:
            typer.secho(f"warning: skipped {skip.reason}", fg=typer.colors.YELLOW, err=True)
        if not scores:
            raise InputError(f"no readable RGB image in {dir} ({len(skipped)} file(s) skipped)")
        out.parent.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="") as f:
            w = csv.writer(f, lineterminator="\n")
            w.writerow(CSV_COLUMNS)
            for s in scores:
                w.writerow([s.file.relative_to(dir).as_posix(), f"{s.probability:.6f}", int(s.positive)])
    except AmberWatchError as err:
        typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
        raise typer.Exit(2 if err.status_code < 500 else 1) from err
    n_pos = sum(s.positive for s in scores)
    typer.echo(f"{out}: {len(scores)} chips scored, {n_pos} positive (threshold {vhr.threshold:.3f}, model "
               f"{vhr.name} {vhr.version}), {len(skipped)} skipped")
