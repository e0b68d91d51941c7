"""Hostile-input guards for ingest: GDAL locked down, files sniffed, sizes checked before any work starts.

* ``gdal_guard()`` configures GDAL for the duration of an ingest: no sibling-file probing
  (``GDAL_DISABLE_READDIR_ON_OPEN=EMPTY_DIR``), no ``/vsicurl/`` access, short HTTP timeouts and no retries, no
  VRT raw bands or Python pixel functions, no PROJ grid downloads. It is defence in depth: the real barrier is
  that every input raster is sniffed by its first bytes and opened with exactly one driver (GTiff or JP2OpenJPEG,
  see ``raster_driver``), so a VRT (or anything else that can point at other files or URLs) is never parsed.
  ``GDAL_SKIP`` is not used: it unregisters drivers for the whole process (the writer's WarpedVRT needs VRT).
* ``check_input_path`` / ``check_member_name`` refuse ``/vsi...`` prefixes, ``..`` components, absolute zip members
  and symlinks; ``check_inside`` refuses a file that resolves outside the input (a symlink out of a .SAFE).
* ``check_zip`` refuses an archive by its directory (member count, declared sizes, compression ratio) before any
  member is read; ``read_metadata_file`` / ``read_zip_member`` read metadata with a hard size limit and
  ``parse_xml`` parses it with defusedxml (no DTD, no entities, no external references).

Every refusal is an ``InputError`` naming the file by its base name only (never a server path) and never quoting
file contents; the limit that was hit is named by its setting (``AMBERWATCH_...``).
"""

from __future__ import annotations

import re
import stat
import zipfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING
from xml.etree.ElementTree import Element, ParseError

import numpy as np
import rasterio
from defusedxml import DefusedXmlException
from defusedxml.ElementTree import fromstring as defused_fromstring

from amberwatch.errors import InputError

if TYPE_CHECKING:
    from rasterio.io import DatasetReader

    from amberwatch.settings import Settings

MB = 1024 * 1024
RATIO_FLOOR_BYTES = MB  # members smaller than this are not ratio-checked (tiny XML can compress very well)
SNIFF_BYTES = 1024

# First bytes of the formats we read -> the one GDAL driver allowed to open them.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"II*\x00", "GTiff"), (b"MM\x00*", "GTiff"),  # classic TIFF, little/big endian
    (b"II+\x00", "GTiff"), (b"MM\x00+", "GTiff"),  # BigTIFF
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JP2OpenJPEG"),  # JPEG 2000 (JP2 box)
    (b"\xff\x4f\xff\x51", "JP2OpenJPEG"),  # raw JPEG 2000 codestream
)
_VSI_PART = re.compile(r"(^|/)vsi[a-z0-9_]*(/|\?|\{|$)", re.IGNORECASE)
_URL = re.compile(r"^[a-z][a-z0-9+.-]*:/", re.IGNORECASE)  # also "http:/x": what Path makes of "http://x"


@dataclass(frozen=True)
class IngestLimits:
    """Size limits of one ingest; the defaults fit a full Sentinel-2 tile (10980 x 10980) and a Landsat scene."""

    max_pixels: int = 400_000_000  # width x height of any one raster (AMBERWATCH_MAX_PIXELS)
    max_archive_mb: int = 8192  # total uncompressed size of a zip (AMBERWATCH_MAX_ARCHIVE_MB)
    max_archive_ratio: int = 100  # uncompressed / compressed size of one zip member >= 1 MB
    max_metadata_mb: int = 4  # MTD_*.xml / *_MTL.txt (AMBERWATCH_MAX_METADATA_MB)
    max_archive_members: int = 20_000  # a Sentinel-2 .SAFE zip holds about 100-200
    max_block_bytes: int = 256 * MB  # one tile/strip GDAL must decode at once (all bands when pixel-interleaved)

    @classmethod
    def from_settings(cls, settings: Settings) -> IngestLimits:
        return cls(max_pixels=settings.max_pixels, max_archive_mb=settings.max_archive_mb,
                   max_archive_ratio=settings.max_archive_ratio, max_metadata_mb=settings.max_metadata_mb)


DEFAULT_LIMITS = IngestLimits()

# GDAL configuration while ingesting (see the module docstring).
GDAL_GUARD_OPTIONS: dict[str, str | int] = {
    "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",  # no .aux.xml/.ovr/.msk/world-file probing next to the input
    "CPL_VSIL_CURL_ALLOWED_EXTENSIONS": ".amberwatch-no-network",  # /vsicurl/ refuses every real file name
    "GDAL_HTTP_TIMEOUT": 1,
    "GDAL_HTTP_CONNECTTIMEOUT": 1,
    "GDAL_HTTP_MAX_RETRY": 0,
    "GDAL_VRT_ENABLE_RAWRASTERBAND": "NO",
    "GDAL_VRT_RAWRASTERBAND_ALLOWED_SOURCE": "SIBLING_OR_CHILD_OF_VRT_PATH",
    "GDAL_VRT_ENABLE_PYTHON": "NO",
    "GDAL_HTTP_NETRC": "NO",
    "PROJ_NETWORK": "OFF",
}


@contextmanager
def gdal_guard(**extra: str | int) -> Iterator[None]:
    """GDAL configured for untrusted input (re-entrant: nested guards are fine). ``extra`` adds or overrides options:
    only ``acquire.window`` opens /vsicurl/, for one asset on an allowed host (AMBERWATCH_STAC_ALLOWED_HOSTS)."""
    with rasterio.Env(**{**GDAL_GUARD_OPTIONS, **extra}):
        yield


# -- names and paths ------------------------------------------------------------------------------------
def base_name(path: str | Path) -> str:
    """What a message may show of a path: its last component (a /vsizip/ member's own name)."""
    text = str(path).rstrip("/")
    return text.rsplit("/", 1)[-1] or text


def scrub(text: str) -> str:
    """A GDAL/OS error message without directories: every ``/a/b/c`` becomes ``c``."""
    return re.sub(r"(?:/[^\s'\"/]*)*/([^\s'\"/]+)", r"\1", text)[:300]


def check_input_path(path: Path) -> None:
    """Refuse paths GDAL or rasterio would treat as virtual/remote, and ``..`` components."""
    text = str(path)
    if "\x00" in text or _URL.match(text) or _VSI_PART.search(text):
        raise InputError(f"{base_name(path)}: URLs and GDAL virtual paths (/vsi...) are not accepted as input")
    if ".." in PurePosixPath(text).parts:
        raise InputError(f"{base_name(path)}: paths with '..' are not accepted as input")


def check_inside(file: Path, root: Path) -> Path:
    """``file`` resolved; refused if it resolves outside ``root`` (a symlink out of the input)."""
    resolved = file.resolve()
    top = root.resolve()
    if resolved != top and top not in resolved.parents:
        raise InputError(f"{base_name(file)} points outside the input {base_name(root)} (symlink): not accepted")
    return resolved


def check_plain_name(name: str, where: str) -> str:
    """A file name taken from metadata (e.g. Landsat FILE_NAME_BAND_n) must be a bare name in the same folder."""
    if not name or "/" in name or "\\" in name or name in (".", "..") or "\x00" in name:
        raise InputError(f"{where} names a band file outside its folder: not accepted")
    return name


# -- rasters ----------------------------------------------------------------------------------------------
def raster_driver(head: bytes, name: str) -> str:
    """The GDAL driver for a file starting with ``head``; InputError for anything but GeoTIFF / JPEG 2000."""
    for magic, driver in _MAGIC:
        if head.startswith(magic):
            return driver
    text = head.lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if b"<vrtdataset" in text or (text.startswith(b"<") and b"vrt" in text):
        raise InputError(f"{name} is a GDAL VRT (an XML file that points at other files or URLs): "
                         "VRTs are not accepted, send the GeoTIFF or JPEG 2000 file itself")
    raise InputError(f"{name} is not a readable raster (not a GeoTIFF or JPEG 2000 file)")


def sniff(gdal_path: str) -> str:
    """The driver for a local file or a ``/vsizip/<archive>/<member>`` path, by the file's first bytes."""
    name = base_name(gdal_path)
    try:
        if gdal_path.startswith("/vsizip/"):
            archive, member = split_vsizip(gdal_path)
            with zipfile.ZipFile(archive) as zf, zf.open(member) as f:
                head = f.read(SNIFF_BYTES)
        elif gdal_path.startswith("/vsi") or _URL.match(gdal_path):
            raise InputError(f"{name}: GDAL virtual paths and URLs are not accepted as input")
        else:
            with open(gdal_path, "rb") as fh:
                head = fh.read(SNIFF_BYTES)
    except (OSError, KeyError, zipfile.BadZipFile, RuntimeError, ValueError) as err:
        raise InputError(f"{name} cannot be read: {scrub(str(err))}") from err
    return raster_driver(head, name)


def vsizip_path(archive: Path, member: str) -> str:
    return f"/vsizip/{archive.resolve()}/{member}"


def split_vsizip(gdal_path: str) -> tuple[Path, str]:
    """``/vsizip/<archive>/<member>`` -> (archive, member): the archive is the first prefix that is a file."""
    rest = gdal_path.removeprefix("/vsizip/")
    parts = rest.split("/")
    for i in range(1, len(parts)):
        candidate = Path("/".join(parts[:i]) or "/")
        if candidate.is_file():
            return candidate, "/".join(parts[i:])
    raise InputError(f"{base_name(gdal_path)}: not inside a readable zip file")


def check_raster_size(ds: DatasetReader, name: str, limits: IngestLimits) -> None:
    """Refuse a raster by its header: too many pixels, or one block (tile/strip) too large to decode at once."""
    n = int(ds.width) * int(ds.height)
    if n > limits.max_pixels:
        raise InputError(f"{name} is {ds.width} x {ds.height} = {n} pixels, which is more than "
                         f"AMBERWATCH_MAX_PIXELS={limits.max_pixels}: refused (crop or split the scene)")
    if not ds.count:
        return
    block_h, block_w = ds.block_shapes[0]
    interleave = str(ds.tags(ns="IMAGE_STRUCTURE").get("INTERLEAVE", "PIXEL")).upper()
    planes = 1 if interleave == "BAND" else ds.count  # pixel-interleaved: all bands in one block
    block_bytes = int(block_h) * int(block_w) * planes * max(np.dtype(t).itemsize for t in ds.dtypes)
    if block_bytes > limits.max_block_bytes:
        raise InputError(f"{name} is stored as blocks of {block_w} x {block_h} pixels x {planes} band(s) "
                         f"({block_bytes // MB} MB to decode at once, more than {limits.max_block_bytes // MB} MB): "
                         "save it tiled (e.g. 512 x 512) and retry")


# -- archives ---------------------------------------------------------------------------------------------
def check_member_name(name: str, archive: str) -> None:
    parts = re.split(r"[/\\]", name)
    if (name.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", name) or ".." in parts or "\x00" in name
            or _VSI_PART.search(name)):
        raise InputError(f"{archive} holds a member with an absolute path or '..' ({base_name(name)}): "
                         "not accepted")


def check_zip_directory(path: Path, limits: IngestLimits) -> None:
    """Refuse a zip by its end-of-central-directory record, before Python builds one object per member
    (a 2 GB upload of tiny entries would otherwise cost tens of GB of memory in ``ZipFile()``)."""
    try:
        with open(path, "rb") as f:
            end = zipfile._EndRecData(f)  # type: ignore[attr-defined]  # the record zipfile itself reads first
    except OSError as err:
        raise InputError(f"cannot read {path.name}: {scrub(err.strerror or str(err))}") from err
    if not end:
        raise InputError(f"{path.name} is not a readable zip file (no central directory)")
    entries, directory_bytes = int(end[zipfile._ECD_ENTRIES_TOTAL]), int(end[zipfile._ECD_SIZE])  # type: ignore[attr-defined]
    if entries > limits.max_archive_members or directory_bytes > limits.max_archive_members * 1024:
        raise InputError(f"{path.name} holds {entries} members ({directory_bytes} bytes of directory), more than "
                         f"{limits.max_archive_members}: not a Sentinel-2 product")


def check_zip(zf: zipfile.ZipFile, archive: str, limits: IngestLimits) -> None:
    """Refuse a zip by its central directory alone, before any member is read (after ``check_zip_directory``)."""
    total = 0
    for info in zf.infolist():
        check_member_name(info.filename, archive)
        mode = info.external_attr >> 16
        if stat.S_ISLNK(mode):
            raise InputError(f"{archive} holds a symbolic link ({base_name(info.filename)}): not accepted")
        if info.flag_bits & 0x1:
            raise InputError(f"{archive} holds an encrypted member ({base_name(info.filename)}): not accepted")
        size = info.file_size
        if size > RATIO_FLOOR_BYTES and size > limits.max_archive_ratio * max(info.compress_size, 1):
            ratio = size / max(info.compress_size, 1)
            raise InputError(
                f"{archive}: member {base_name(info.filename)} expands from {info.compress_size} to {size} bytes "
                f"(ratio {ratio:.0f}), more than AMBERWATCH_MAX_ARCHIVE_RATIO={limits.max_archive_ratio}: "
                "refused as a zip bomb"
            )
        total += size
    if total > limits.max_archive_mb * MB:
        raise InputError(f"{archive} expands to {total // MB} MB, more than "
                         f"AMBERWATCH_MAX_ARCHIVE_MB={limits.max_archive_mb}: refused")


# -- metadata ---------------------------------------------------------------------------------------------
def _too_big(name: str, limits: IngestLimits) -> InputError:
    return InputError(f"{name} is larger than AMBERWATCH_MAX_METADATA_MB={limits.max_metadata_mb} MB: "
                      "not a metadata file we accept")


def read_metadata_file(path: Path, limits: IngestLimits) -> bytes:
    """At most ``max_metadata_mb`` of a metadata file (checked by size first, then by a bounded read)."""
    cap = limits.max_metadata_mb * MB
    try:
        if path.stat().st_size > cap:
            raise _too_big(path.name, limits)
        with open(path, "rb") as f:
            data = f.read(cap + 1)
    except OSError as err:
        raise InputError(f"cannot read {path.name}: {scrub(err.strerror or str(err))}") from err
    if len(data) > cap:
        raise _too_big(path.name, limits)
    return data


def read_zip_member(zf: zipfile.ZipFile, member: str, limits: IngestLimits) -> bytes:
    """At most ``max_metadata_mb`` of a zip member, whatever its directory entry claims."""
    cap = limits.max_metadata_mb * MB
    name = base_name(member)
    if zf.getinfo(member).file_size > cap:
        raise _too_big(name, limits)
    with zf.open(member) as f:
        data = f.read(cap + 1)
    if len(data) > cap:
        raise _too_big(name, limits)
    return data


def parse_xml(xml: bytes, name: str, what: str) -> Element:
    """Parse untrusted XML: defusedxml, no DTD, no entity expansion, no external references."""
    try:
        return defused_fromstring(xml, forbid_dtd=True, forbid_entities=True, forbid_external=True)
    except DefusedXmlException as err:
        raise InputError(f"{name} uses XML features that are not accepted (DTD, entities or external "
                         f"references): not {what}") from err
    except ParseError as err:
        raise InputError(f"{name} is not readable {what} XML: {err}") from err
