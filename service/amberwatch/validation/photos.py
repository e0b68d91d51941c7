"""Field-check photos, kept simple and safe: only JPEG or PNG (decided by content), the pixel count checked from
the header before decoding, then decoded and re-encoded as a JPEG without any metadata (no EXIF, no GPS: the check
has its own position), at most ``MAX_SIDE`` pixels on the longer side."""

from __future__ import annotations

import io
import warnings

from PIL import Image, ImageOps, UnidentifiedImageError

from amberwatch.errors import InputError, PayloadTooLargeError

MAX_SIDE = 2048
JPEG_QUALITY = 85
SIGNATURES = {b"\xff\xd8\xff": "JPEG", b"\x89PNG\r\n\x1a\n": "PNG"}


def reencode(data: bytes, name: str, max_pixels: int) -> tuple[bytes, int, int]:
    """The photo re-encoded as a metadata-free JPEG, and its width and height; InputError for anything that is
    not a readable JPEG/PNG, PayloadTooLargeError for too many pixels."""
    fmt = next((f for sig, f in SIGNATURES.items() if data.startswith(sig)), None)
    if fmt is None:
        raise InputError(f"{name}: only JPEG or PNG photos are accepted (decided by the content, not the name)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[fmt])
            width, height = img.size
            if width * height > max_pixels:
                raise PayloadTooLargeError(f"{name}: {width} x {height} pixels is more than the {max_pixels:,} "
                                           "allowed (checked before decoding)")
            img.load()
            rgb = ImageOps.exif_transpose(img).convert("RGB")
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PayloadTooLargeError(f"{name}: too many pixels (a decompression bomb?)") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise InputError(f"{name}: not a readable {fmt} image") from None
    rgb.thumbnail((MAX_SIDE, MAX_SIDE))
    out = io.BytesIO()
    rgb.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True)  # no exif= / icc_profile=: nothing is carried over
    return out.getvalue(), rgb.width, rgb.height
