"""Decide what a file is from its bytes (never from its name), and refuse what is not a plain photo or video.

Accepted: JPEG, PNG, WebP, HEIC/HEIF (photos); MP4 and WebM (videos). Refused, with the reason: SVG, HTML, XML,
scripts, PDF, archives and executables, and polyglots — a photo or video with other data after its end.
"""

from __future__ import annotations

import re
import struct
from pathlib import Path

from amberwatch.errors import InputError

HEAD = 4096
IMAGE_TYPES = {"jpeg": "image/jpeg", "png": "image/png", "webp": "image/webp", "heic": "image/heic"}
VIDEO_TYPES = {"mp4": "video/mp4", "webm": "video/webm"}
ACCEPTED = "JPEG, PNG, WebP or HEIC photos, MP4 or WebM videos"
HEIC_BRANDS = {b"heic", b"heix", b"heim", b"heis", b"hevc", b"hevx", b"mif1", b"msf1", b"avif"}
MP4_BRANDS = {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"M4V ", b"dash", b"mmp4",
              b"3gp4", b"3gp5", b"3gp6", b"qt  "}

# (pattern at the start of the file, what it is): refused with this name
_REFUSED_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"PK\x03\x04", "a ZIP archive (or an Office/JAR/APK file)"),
    (b"PK\x05\x06", "a ZIP archive"),
    (b"Rar!\x1a\x07", "a RAR archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-Zip archive"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"BZh", "a bzip2 archive"),
    (b"\xfd7zXZ\x00", "an xz archive"),
    (b"%PDF", "a PDF document"),
    (b"MZ", "a Windows executable"),
    (b"\x7fELF", "an executable (ELF)"),
    (b"#!", "a script"),
    (b"GIF8", "a GIF (send a JPEG, PNG or WebP photo)"),
)
_MARKUP = re.compile(rb"^\s*(?:<\?xml|<!--|<!doctype|<svg|<html|<script|<\?php|<body|<head|<iframe|<)", re.I)
_SVG = re.compile(rb"<svg[\s>]", re.I)
_HTML = re.compile(rb"<(?:!doctype\s+html|html|script|body|iframe|head)[\s>]", re.I)


class RefusedFile(InputError):
    """A file that is not kept; the message says why (HTTP 415)."""

    status_code = 415


def kind_of(head: bytes, name: str) -> str:
    """``jpeg``, ``png``, ``webp``, ``heic``, ``mp4`` or ``webm`` from the first bytes; RefusedFile otherwise."""
    if head.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "webp"
    if head[4:8] == b"ftyp":
        brands = {head[8:12], *(head[i:i + 4] for i in range(16, min(len(head), 64), 4))}
        if head[8:12] in HEIC_BRANDS or (brands & HEIC_BRANDS and not brands & MP4_BRANDS):
            return "heic"
        if brands & MP4_BRANDS:
            return "mp4"
    if head.startswith(b"\x1a\x45\xdf\xa3"):
        if b"webm" in head[:64]:
            return "webm"
        raise RefusedFile(f"{name}: a Matroska video; send MP4 or WebM")
    for magic, what in _REFUSED_MAGIC:
        if head.startswith(magic):
            raise RefusedFile(f"{name}: {what} is not accepted; send {ACCEPTED}")
    if len(head) > 262 and head[257:262] == b"ustar":
        raise RefusedFile(f"{name}: a tar archive is not accepted; send {ACCEPTED}")
    text = head.lstrip(b"\xef\xbb\xbf")
    if _MARKUP.match(text):
        what = "an SVG image (it can carry scripts)" if _SVG.search(head) else \
            "an HTML page" if _HTML.search(head) else "an XML/HTML document"
        raise RefusedFile(f"{name}: {what} is not accepted, whatever its name; send {ACCEPTED}")
    raise RefusedFile(f"{name}: not a photo or video this service reads; send {ACCEPTED}")


def check_single(path: Path, kind: str, name: str) -> None:
    """Refuse a polyglot: bytes after the end of the image or video (a ZIP, HTML or script riding along)."""
    size = path.stat().st_size
    with open(path, "rb") as f:
        end = {"jpeg": _jpeg_end, "png": _png_end, "webp": _riff_end, "heic": _boxes_end, "mp4": _boxes_end,
               "webm": _ebml_end}[kind](f, size, name)
        if end is None or end >= size:
            return
        f.seek(end)
        tail = f.read(min(size - end, 1 << 16))
    if tail.strip(b"\x00\r\n\t ") == b"":
        return  # padding only
    raise RefusedFile(f"{name}: {size - end} bytes of other data after the end of the {kind.upper()} "
                      f"(a polyglot file); send the {'photo' if kind in IMAGE_TYPES else 'video'} itself")


def _bad(name: str, kind: str) -> RefusedFile:
    return RefusedFile(f"{name}: a damaged {kind.upper()} file")


def _jpeg_end(f, size: int, name: str) -> int:
    """Offset just after the EOI marker, walking the segments and the entropy-coded data (stuffed bytes and
    restart markers are data; a marker inside scan data ends the scan)."""
    data = f.read()
    i = 2
    n = len(data)
    while i < n:
        if data[i] != 0xFF:
            raise _bad(name, "jpeg")
        while i < n and data[i] == 0xFF:
            i += 1
        if i >= n:
            break
        marker = data[i]
        i += 1
        if marker == 0xD9:
            return i
        if marker in (0x01, *range(0xD0, 0xD8)):
            continue
        if i + 2 > n:
            break
        (length,) = struct.unpack(">H", data[i:i + 2])
        i += length
        if marker == 0xDA:  # scan data follows until the next marker that is not RSTn or a stuffed 0x00
            while True:
                j = data.find(b"\xff", i)
                if j < 0 or j + 1 >= n:
                    raise _bad(name, "jpeg")
                nxt = data[j + 1]
                if nxt == 0x00 or 0xD0 <= nxt <= 0xD7 or nxt == 0xFF:
                    i = j + (1 if nxt == 0xFF else 2)
                    continue
                i = j
                break
    raise _bad(name, "jpeg")


def _png_end(f, size: int, name: str) -> int:
    pos = 8
    f.seek(pos)
    while pos + 12 <= size:
        header = f.read(8)
        length, ctype = struct.unpack(">I4s", header)
        pos += 12 + length
        if ctype == b"IEND":
            return pos
        f.seek(pos)
    raise _bad(name, "png")


def _riff_end(f, size: int, name: str) -> int:
    f.seek(4)
    (length,) = struct.unpack("<I", f.read(4))
    return 8 + length + (length & 1)


def _boxes_end(f, size: int, name: str) -> int:
    """ISO base media (MP4, HEIC): the top-level boxes must cover the file."""
    pos = 0
    while pos + 8 <= size:
        f.seek(pos)
        length, btype = struct.unpack(">I4s", f.read(8))
        if length == 1:
            (length,) = struct.unpack(">Q", f.read(8))
        elif length == 0:
            return size  # the last box runs to the end of the file
        if length < 8 or not re.fullmatch(rb"[\x20-\x7e]{4}", btype):
            return pos  # not a box: other data from here on
        pos += length
    return pos if pos <= size else size


def _ebml_end(f, size: int, name: str) -> int | None:
    """WebM: the EBML header then one Segment; its size says where the file ends (None when unknown)."""
    pos = 0
    for _ in range(2):
        f.seek(pos)
        head = f.read(16)
        id_len = _vint_len(head[0])
        if id_len > 4 or len(head) < id_len + 1:
            raise _bad(name, "webm")
        size_len = _vint_len(head[id_len])
        if size_len > 8:
            raise _bad(name, "webm")
        raw = head[id_len:id_len + size_len]
        value = raw[0] & (0xFF >> size_len)
        for b in raw[1:]:
            value = (value << 8) | b
        if value == (1 << (7 * size_len)) - 1:
            return None  # unknown size (live recording): cannot tell where it ends
        pos += id_len + size_len + value
    return pos


def _vint_len(first: int) -> int:
    for n in range(8):
        if first & (0x80 >> n):
            return n + 1
    return 9
