"""Field-check photos, kept simple and safe: only JPEG or PNG (decided by content), then the crowd reports'
re-encoding (``amberwatch.crowd.images``: pixel count checked from the header before decoding, turned upright,
a JPEG without any metadata — no EXIF, no GPS: the check has its own position), at most ``MAX_SIDE`` pixels on the
longer side."""

from __future__ import annotations

import io

from amberwatch.crowd import images
from amberwatch.crowd.sniff import RefusedFile
from amberwatch.errors import InputError, PayloadTooLargeError

MAX_SIDE = 2048
SIGNATURES = {b"\xff\xd8\xff": "jpeg", b"\x89PNG\r\n\x1a\n": "png"}


def reencode(data: bytes, name: str, max_pixels: int) -> tuple[bytes, int, int]:
    """The photo re-encoded as a metadata-free JPEG, and its width and height; InputError for anything that is
    not a readable JPEG/PNG, PayloadTooLargeError for too many pixels."""
    kind = next((k for sig, k in SIGNATURES.items() if data.startswith(sig)), None)
    if kind is None:
        raise InputError(f"{name}: only JPEG or PNG photos are accepted (decided by the content, not the name)")
    out = io.BytesIO()
    try:
        photo, _ = images.reencode(io.BytesIO(data), kind, name, max_pixels, out, keep_gps=False, max_side=MAX_SIDE)
    except images.PhotoTooLarge as e:
        raise PayloadTooLargeError(str(e)) from None
    except RefusedFile as e:  # unreadable or damaged image data: a plain 400 here, as for any bad field
        raise InputError(str(e)) from None
    return out.getvalue(), photo.width, photo.height
