"""Score a folder of RGB chips with the VHR classifier.

Unreadable or non-image files are skipped with a warning that lists them; when no file in the folder is a
readable image an InputError is raised (CLI exit 2).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from amberwatch.errors import InputError
from amberwatch.vhr.io import read_rgb
from amberwatch.vhr.model import VhrModel, load_vhr_model

log = logging.getLogger(__name__)


@dataclass
class ChipScore:
    """Probability of amber mining for one chip; ``positive`` at the model's operating threshold."""

    file: Path
    probability: float
    positive: bool


@dataclass
class Skipped:
    file: Path
    reason: str


def list_files(folder: Path) -> list[Path]:
    """All regular, non-hidden files under ``folder`` (recursively), sorted."""
    folder = Path(folder)
    if not folder.is_dir():
        raise InputError(f"{folder} is not a folder")
    return sorted(p for p in folder.rglob("*") if p.is_file() and not any(part.startswith(".") for part in
                                                                         p.relative_to(folder).parts))


def score_files(files: Iterable[Path], model: VhrModel, progress: bool = False) -> tuple[list[ChipScore],
                                                                                          list[Skipped]]:
    """Score each file; files that are not readable RGB images go to the skipped list with the reason."""
    files = list(files)
    scores: list[ChipScore] = []
    skipped: list[Skipped] = []
    iterator: Iterable[Path] = files
    if progress:
        from tqdm import tqdm

        iterator = tqdm(files, desc="scoring chips", unit="chip")
    for f in iterator:
        try:
            rgb = read_rgb(f)
        except InputError as err:
            skipped.append(Skipped(f, str(err)))
            continue
        p = model.score(rgb)
        scores.append(ChipScore(f, p, p >= model.threshold))
    return scores, skipped


def score_chips(dir: Path, model_dir: Path | None = None, progress: bool = False,  # noqa: A002
                models_dir: Path | None = None) -> list[ChipScore]:
    """Score every image under ``dir``. Non-images are skipped (logged); raises InputError if none is readable.

    ``model_dir`` unset: the newest vhr-texty in the registry ``models_dir``.
    """
    files = list_files(dir)
    if not files:
        raise InputError(f"{dir} contains no files")
    model = load_vhr_model(model_dir, models_dir=models_dir)
    scores, skipped = score_files(files, model, progress)
    if skipped:
        log.warning("skipped %d file(s) that are not readable RGB images:\n%s", len(skipped),
                    "\n".join(f"  {s.reason}" for s in skipped))
    if not scores:
        raise InputError(f"no readable RGB image in {dir}: " + "; ".join(s.reason for s in skipped[:5]) +
                         (f" (and {len(skipped) - 5} more)" if len(skipped) > 5 else ""))
    return scores
