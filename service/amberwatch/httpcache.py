"""HTTP validators shared by the REST API, the portal and the OGC services."""

from __future__ import annotations


def etag_matches(if_none_match: str, etag: str) -> bool:
    """Weak comparison (RFC 9110 13.1.2) of an ``If-None-Match`` header against our ETag: ``*``, or any listed tag
    equal to ours once ``W/`` is dropped from both."""
    if not if_none_match:
        return False
    wanted = etag.removeprefix("W/")
    return any(tag.strip() == "*" or tag.strip().removeprefix("W/") == wanted for tag in if_none_match.split(","))
