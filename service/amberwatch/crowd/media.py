"""One uploaded file from staging to the copy that is stored: size limit, type by content, polyglot check, then
a re-encoded photo or a metadata-free video with its poster. Everything it writes is in ``out_dir`` under
generated names; the caller moves them into place (or deletes the staging folder when anything is refused)."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from pathlib import Path

from amberwatch.crowd import images, videos
from amberwatch.crowd.sniff import HEAD, IMAGE_TYPES, RefusedFile, check_single, kind_of
from amberwatch.errors import InputError


@dataclass(frozen=True)
class MediaLimits:
    max_image_bytes: int
    max_image_pixels: int
    max_video_bytes: int
    max_video_s: float
    tool_timeout_s: float


RefusedMedia = RefusedFile


@dataclass(frozen=True)
class StoredMedia:
    kind: str  # image or video
    media_type: str  # of the stored copy
    file_name: str
    poster_name: str | None
    sha256: str  # of the upload as received
    bytes: int
    width: int
    height: int
    duration_s: float | None
    gps_kept: bool
    gps: tuple[float, float] | None  # lon, lat from the photo's EXIF (whether kept or not)


def safe_name(name: str | None) -> str:
    """The client's file name, only for messages (never used as a path)."""
    base = (name or "file").replace("\\", "/").rsplit("/", 1)[-1]
    return "".join(c if c.isprintable() else "?" for c in base)[:80] or "file"


def sha256_of(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def classify(path: Path, name: str, limits: MediaLimits) -> str:
    """The kind (``jpeg``, ``png``, ``webp``, ``heic``, ``mp4``, ``webm``), refusing files over their limit and
    polyglots; nothing is decoded yet."""
    size = path.stat().st_size
    if size == 0:
        raise InputError(f"{name}: the file is empty")
    with open(path, "rb") as f:
        head = f.read(HEAD)
    kind = kind_of(head, name)
    cap = limits.max_image_bytes if kind in IMAGE_TYPES else limits.max_video_bytes
    if size > cap:
        raise images.PhotoTooLarge(f"{name}: {size / 2**20:.1f} MB is more than the {cap >> 20} MB allowed for a "
                                   f"{'photo' if kind in IMAGE_TYPES else 'video'}")
    check_single(path, kind, name)
    return kind


def prepare(path: Path, name: str, kind: str, digest: str, out_dir: Path, limits: MediaLimits,
            keep_gps: bool) -> StoredMedia:
    """Decode ``path`` (an upload in staging, already passed by ``classify`` as ``kind``; ``digest`` is its
    ``sha256_of``) and write its stored copy (and a poster) into ``out_dir``."""
    size = path.stat().st_size
    stem = secrets.token_hex(16)
    if kind in IMAGE_TYPES:
        out = out_dir / f"{stem}.jpg"
        photo, kept = images.reencode(path, kind, name, limits.max_image_pixels, out, keep_gps)
        return StoredMedia("image", "image/jpeg", out.name, None, digest, size, photo.width, photo.height, None,
                           kept, photo.gps)
    video = videos.probe(path, kind, name, limits.max_video_s, limits.max_image_pixels, limits.tool_timeout_s)
    out, poster = out_dir / f"{stem}.{kind}", out_dir / f"{stem}-poster.jpg"
    videos.strip_and_poster(path, kind, name, video, out, poster, limits.tool_timeout_s)
    return StoredMedia("video", videos_media_type(kind), out.name, poster.name, digest, size, video.width,
                       video.height, video.duration_s, False, None)


def videos_media_type(kind: str) -> str:
    return {"mp4": "video/mp4", "webm": "video/webm"}[kind]
