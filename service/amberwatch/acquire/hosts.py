"""The allow-list of STAC and asset hosts (AMBERWATCH_STAC_ALLOWED_HOSTS): nothing else is ever fetched."""

from __future__ import annotations

from fnmatch import fnmatchcase
from urllib.parse import urljoin, urlsplit

from amberwatch.errors import InputError


def is_http(url: str) -> bool:
    return urlsplit(url).scheme.lower() in ("http", "https")


def host_allowed(url: str, patterns: list[str]) -> bool:
    """``url`` is http(s) and its host (or host:port) matches one of ``patterns`` (shell patterns)."""
    parts = urlsplit(url)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        return False
    host = parts.hostname.lower()
    try:
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError:
        return False
    return any(fnmatchcase(host, p.lower()) or fnmatchcase(f"{host}:{port}", p.lower()) for p in patterns)


def check_url(url: str, patterns: list[str], what: str = "URL") -> str:
    """``url`` if its host is allowed; InputError naming only the host otherwise."""
    if not host_allowed(url, patterns):
        host = urlsplit(url).netloc.rsplit("@", 1)[-1] or "(no host)"
        raise InputError(f"{what} host {host!r} is not in AMBERWATCH_STAC_ALLOWED_HOSTS: not fetched")
    return url


def check_redirect(base: str, location: str, patterns: list[str]) -> str:
    """A redirect target (relative or absolute) is allowed only to an allowed host."""
    return check_url(urljoin(base, location), patterns, "redirect")
