"""The open geoportal: message catalogs (uk/en), language choice, HTML templates and the built static files.

Every text a visitor reads comes from ``i18n/<lang>.json`` (flat ``key: text`` with ``{name}`` placeholders);
templates call ``t("key", name=value)``, scripts read the same catalog embedded in the page. The JavaScript and CSS
in ``js/`` and ``css/`` are bundled with MapLibre GL and Chart.js (npm) into ``static/`` by ``make portal``.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape

HERE = Path(__file__).resolve().parent
STATIC_DIR = HERE / "static"
TEMPLATES_DIR = HERE / "templates"
I18N_DIR = HERE / "i18n"
LANGS = ("uk", "en")
DEFAULT_LANG = "en"  # for browsers that ask for neither Ukrainian nor English
LANG_COOKIE = "aw_lang"


@lru_cache
def catalog(lang: str) -> dict[str, str]:
    """The message catalog of ``lang`` (one of LANGS)."""
    if lang not in LANGS:
        raise ValueError(f"unsupported language {lang!r}")
    data: dict[str, str] = json.loads((I18N_DIR / f"{lang}.json").read_text(encoding="utf-8"))
    return data


def translator(lang: str) -> Callable[..., str]:
    """``t(key, **values)``: the text of ``key`` in ``lang`` (English, then the key itself, when missing)."""
    messages, fallback = catalog(lang), catalog("en")

    def t(key: str, **values: Any) -> str:
        text = messages.get(key) or fallback.get(key) or key
        return text.format(**values) if values else text

    return t


def _accept_language(header: str) -> list[tuple[float, int, str]]:
    out = []
    for i, part in enumerate(header.split(",")[:20]):
        tag, _, params = part.strip().partition(";")
        q = 1.0
        params = params.strip()
        if params.startswith("q="):
            try:
                q = float(params[2:])
            except ValueError:
                q = 0.0
        primary = tag.strip().split("-")[0].lower()
        if primary:
            out.append((q, -i, primary))
    return sorted(out, reverse=True)


def negotiate(query: str | None, cookie: str | None, accept_language: str | None) -> str:
    """``?lang=`` wins, then the visitor's earlier choice (cookie), then the browser's Accept-Language (Ukrainian
    for Ukrainian browsers), else English."""
    for choice in (query, cookie):
        if choice in LANGS:
            return str(choice)
    for q, _, primary in _accept_language(accept_language or ""):
        if q > 0 and primary in LANGS:
            return primary
    return DEFAULT_LANG


@lru_cache
def environment() -> Environment:
    env = Environment(loader=FileSystemLoader(TEMPLATES_DIR), autoescape=select_autoescape(["html"]),
                      trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = format_number
    return env


def format_number(value: Any, digits: int = 2) -> str:
    """A number with ``digits`` decimals and a thin space between thousands; '–' for None."""
    if value is None:
        return "–"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}".replace(",", "\u202f")
    return f"{float(value):,.{digits}f}".replace(",", "\u202f")


def render(template: str, lang: str, **context: Any) -> str:
    """Render ``templates/<template>`` with ``t``, ``lang`` and the catalog for scripts (``messages``)."""
    return environment().get_template(template).render(t=translator(lang), lang=lang, langs=LANGS,
                                                       messages=catalog(lang), **context)
