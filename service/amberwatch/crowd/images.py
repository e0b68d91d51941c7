"""Photos: the pixel count from the header before any decoding (decompression bombs), the EXIF GPS position,
and the stored copy: decoded, turned upright, re-encoded as JPEG with no metadata but, when the reporter agreed,
the GPS position."""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from PIL import Image, ImageOps, UnidentifiedImageError

from amberwatch.crowd.sniff import RefusedFile

GPS_IFD = 0x8825
GPS_POSITION_TAGS = (0, 1, 2, 3, 4, 5, 6)  # version, lat ref, lat, lon ref, lon, altitude ref, altitude
MAX_SIDE = 4096  # stored photos are at most this many pixels on their longer side
JPEG_QUALITY = 85

_heif_registered = False


def _register_heif() -> None:
    global _heif_registered
    if not _heif_registered:
        from pillow_heif import register_heif_opener

        register_heif_opener()
        _heif_registered = True


@dataclass(frozen=True)
class Photo:
    width: int
    height: int
    gps: tuple[float, float] | None  # lon, lat from EXIF


class PhotoTooLarge(RefusedFile):
    status_code = 413


def _open(path: Path | IO[bytes], kind: str, name: str, max_pixels: int) -> Image.Image:
    """Open lazily (header only) and refuse too many pixels before anything is decoded."""
    if kind == "heic":
        _register_heif()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(path, formats=[{"jpeg": "JPEG", "png": "PNG", "webp": "WEBP", "heic": "HEIF"}[kind]])
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise PhotoTooLarge(f"{name}: too many pixels (a decompression bomb?): refused before decoding") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError):
        raise RefusedFile(f"{name}: not a readable {kind.upper()} image") from None
    width, height = img.size
    if width * height > max_pixels:
        img.close()
        raise PhotoTooLarge(f"{name}: {width} x {height} pixels is more than the {max_pixels:,} allowed "
                            "(checked from the header, before decoding)")
    return img


def _gps(img: Image.Image) -> tuple[dict[int, object], tuple[float, float] | None]:
    try:
        ifd = dict(img.getexif().get_ifd(GPS_IFD))
    except Exception:  # a broken EXIF block is simply no position
        return {}, None
    position = {k: ifd[k] for k in GPS_POSITION_TAGS if k in ifd}
    try:
        lat = _degrees(ifd[2]) * (-1 if str(ifd.get(1, "N")).upper().startswith("S") else 1)
        lon = _degrees(ifd[4]) * (-1 if str(ifd.get(3, "E")).upper().startswith("W") else 1)
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        return {}, None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180) or (lat == 0 and lon == 0):
        return {}, None
    return position, (lon, lat)


def _degrees(value: Any) -> float:
    d, m, s = value
    return float(d) + float(m) / 60 + float(s) / 3600


def read_photo(path: Path, kind: str, name: str, max_pixels: int) -> Photo:
    img = _open(path, kind, name, max_pixels)
    with img:
        _, gps = _gps(img)
        return Photo(img.width, img.height, gps)


def reencode(path: Path | IO[bytes], kind: str, name: str, max_pixels: int, out: Path | IO[bytes], keep_gps: bool,
             max_side: int = MAX_SIDE) -> tuple[Photo, bool]:
    """Decode (within the pixel limit), turn upright by its EXIF orientation, drop every metadata block (EXIF,
    XMP, ICC, comments) and write a JPEG at most ``max_side`` pixels on its longer side; with ``keep_gps`` only
    the GPS position goes back in. Returns the stored photo and whether a GPS position was kept."""
    img = _open(path, kind, name, max_pixels)
    with img:
        position, gps = _gps(img)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error", Image.DecompressionBombWarning)
                img.load()
                upright = ImageOps.exif_transpose(img)
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombWarning):
            raise RefusedFile(f"{name}: the {kind.upper()} image data is damaged") from None
        rgb = upright.convert("RGB")
    rgb.thumbnail((max_side, max_side))
    exif = b""
    kept = keep_gps and bool(position) and gps is not None
    if kept:
        new = Image.Exif()
        new[GPS_IFD] = position
        exif = new.tobytes()
    rgb.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, exif=exif)
    return Photo(rgb.width, rgb.height, gps), kept
