"""Render the MapServer mapfile, the MapServer config file and the pygeoapi config from ogc_config/ templates.

The template directory is ``settings.ogc_config_dir`` (``AMBERWATCH_OGC_CONFIG_DIR``), passed in as ``config_dir``.
"""

from __future__ import annotations

from dataclasses import asdict
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from amberwatch.publish.catalog import REGION_EXTENT
from amberwatch.publish.connection import DbParams, serving_options
from amberwatch.publish.layers import MAP_ALIAS, SERVICE, SRS, Layer

# Label font: DejaVu Sans has Latin and Cyrillic (Debian fonts-dejavu-core, pulled in by fontconfig).
LABEL_FONTS = (
    Path("/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf"),
    Path("/usr/share/fonts/TTF/DejaVuSans.ttf"),
    Path("/usr/share/fonts/dejavu/DejaVuSans.ttf"),
)


def find_label_font() -> Path | None:
    """The first label font that exists here; without one the layers are drawn without labels."""
    return next((p for p in LABEL_FONTS if p.is_file()), None)


def render_fontset(font: Path) -> str:
    """A MapServer FONTSET file: alias ``sans`` for the label font."""
    return f"sans {font.resolve()}\n"


def mapfile_string(value: object) -> str:
    """Escape a value for a double-quoted mapfile string."""
    return str(value).replace("\\", "\\\\").replace('"', '\\"').replace("\n", " ")


@lru_cache
def _env(root: Path) -> Environment:
    if not (root / "mapserver" / "amberwatch.map.j2").exists():
        raise FileNotFoundError(f"OGC config templates not found in {root} (set AMBERWATCH_OGC_CONFIG_DIR)")
    env = Environment(
        loader=FileSystemLoader(str(root)),
        undefined=StrictUndefined,
        autoescape=False,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["ms"] = mapfile_string
    return env


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _layer_dicts(layers: list[Layer]) -> list[dict]:
    return [asdict(layer) for layer in layers]


def render_mapfile(layers: list[Layer], db: DbParams, base_url: str, fontset: Path | None = None, *,
                   config_dir: Path) -> str:
    """The mapfile; ``fontset`` (a file written by :func:`render_fontset`) turns the name labels on."""
    return _env(config_dir).get_template("mapserver/amberwatch.map.j2").render(
        generated_at=_now(),
        onlineresource=f"{base_url}/ows",
        map_extent=REGION_EXTENT,
        srs=SRS,
        service=SERVICE,
        connection=db.libpq(),
        templates_dir=str((config_dir / "mapserver" / "templates").resolve()),
        layers=_layer_dicts(layers),
        fontset=str(fontset.resolve()) if fontset else None,
    )


def render_mapserver_config(mapfile: Path, *, config_dir: Path) -> str:
    return _env(config_dir).get_template("mapserver/mapserver.conf.j2").render(
        mapfile=mapfile_string(mapfile.resolve()), alias=MAP_ALIAS
    )


def render_pygeoapi_config(layers: list[Layer], db: DbParams, base_url: str, host: str, port: int, *,
                           config_dir: Path) -> str:
    return _env(config_dir).get_template("pygeoapi/pygeoapi-config.yml.j2").render(
        generated_at=_now(),
        bind_host=host,
        bind_port=port,
        ogcapi_url=f"{base_url}/ogcapi",
        ows_url=f"{base_url}/ows",
        log_level="ERROR",
        service={**SERVICE, "url": base_url},
        db=asdict(db),
        db_connect_args={**db.options, "options": serving_options()},  # libpq keywords, as psycopg2 arguments
        layers=_layer_dicts(layers),
    )
