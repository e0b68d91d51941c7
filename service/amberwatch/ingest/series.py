"""A series of scenes given as files and folders: every layout ingest accepts, folders of scenes expanded."""

from __future__ import annotations

import logging
from pathlib import Path

from amberwatch.errors import InputError
from amberwatch.ingest.pipeline import recognise_input
from amberwatch.ingest.safety import check_inside

log = logging.getLogger(__name__)


def _scene_kind(path: Path, folder: Path) -> str | None:
    """The ingest recogniser's verdict on an entry of ``folder`` (the one list of scene layouts); an entry that
    ingest refuses outright (a .vrt, an unreadable entry) or a symlink out of ``folder`` is no scene."""
    try:
        check_inside(path, folder)  # the folder was checked (allowed roots); its entries must stay inside it
        return recognise_input(path)
    except (InputError, OSError) as err:
        log.info("skipping %s: %s", path.name, err)
        return None


def expand_scene_paths(paths: list[Path]) -> list[Path]:
    """Files as given; a directory that ingest takes as one scene (.SAFE, Landsat folder, Sentinel-2 band folder)
    as is; any other directory is replaced by the scenes directly inside it (as recognised by
    ``recognise_input``, so track accepts every layout ingest and detect accept)."""
    out: list[Path] = []
    for path in paths:
        if not path.exists():
            raise InputError(f"{path.name or path}: no such file or directory")
        if path.is_file() or recognise_input(path) is not None:
            out.append(path)
            continue
        found = [p for p in sorted(path.iterdir()) if _scene_kind(p, path) is not None]
        if not found:
            raise InputError(f"{path.name or path}: no scene in this directory (GeoTIFF, .zip, .SAFE, Landsat "
                             "folder or Sentinel-2 band folder)")
        out.extend(found)
    return list(dict.fromkeys(out))
