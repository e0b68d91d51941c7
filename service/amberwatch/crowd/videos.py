"""Videos: probed with ffprobe (container, duration, picture size) and copied with ffmpeg without any metadata
(no location atoms, no device names), plus a JPEG poster frame; every call has a time limit."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from amberwatch.crowd.sniff import RefusedFile


@dataclass(frozen=True)
class Video:
    width: int
    height: int
    duration_s: float


class VideoTooLarge(RefusedFile):
    status_code = 413


class MediaToolMissing(RuntimeError):
    """ffmpeg/ffprobe is not installed (apt-get install ffmpeg)."""


def _tool(name: str) -> str:
    path = shutil.which(name)
    if path is None:
        raise MediaToolMissing(f"{name} not found: apt-get install ffmpeg")
    return path


def _run(args: list[str], timeout: float, name: str, what: str) -> subprocess.CompletedProcess[bytes]:
    try:
        return subprocess.run(args, capture_output=True, timeout=timeout, check=False, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        raise RefusedFile(f"{name}: {what} took longer than {timeout:g} s; send a shorter video") from None


FORMATS = {"mp4": ("mp4", "mov"), "webm": ("webm", "matroska")}


def probe(path: Path, kind: str, name: str, max_seconds: float, max_pixels: int, timeout: float) -> Video:
    res = _run([_tool("ffprobe"), "-v", "error", "-show_entries",
                "format=format_name,duration:stream=codec_type,width,height", "-of", "json", str(path)],
               timeout, name, "reading the video")
    try:
        info = json.loads(res.stdout or b"{}")
    except ValueError:
        info = {}
    fmt = info.get("format") or {}
    if res.returncode != 0 or not any(f in str(fmt.get("format_name", "")).split(",") for f in FORMATS[kind]):
        raise RefusedFile(f"{name}: not a readable {kind.upper()} video")
    video = [s for s in info.get("streams", []) if s.get("codec_type") == "video"]
    if not video:
        raise RefusedFile(f"{name}: the file has no video stream")
    try:
        duration = float(str(fmt.get("duration")))
    except (TypeError, ValueError):
        raise RefusedFile(f"{name}: the video's duration cannot be read") from None
    if duration > max_seconds:
        raise VideoTooLarge(f"{name}: {duration:.1f} s is longer than the {max_seconds:g} s allowed")
    width, height = int(video[0].get("width") or 0), int(video[0].get("height") or 0)
    if width * height > max_pixels or width <= 0 or height <= 0:
        raise VideoTooLarge(f"{name}: a {width} x {height} picture is not accepted")
    return Video(width, height, duration)


def strip_and_poster(path: Path, kind: str, name: str, video: Video, out: Path, poster: Path,
                     timeout: float) -> None:
    """Copy the first video (and audio) stream without metadata into ``out``; a JPEG frame into ``poster``."""
    ffmpeg = _tool("ffmpeg")
    res = _run([ffmpeg, "-v", "error", "-nostdin", "-y", "-i", str(path), "-map", "0:v:0", "-map", "0:a:0?",
                "-c", "copy", "-map_metadata", "-1", "-map_chapters", "-1", "-fflags", "+bitexact",
                *(["-movflags", "+faststart"] if kind == "mp4" else []),
                "-f", kind, str(out)], timeout, name, "copying the video")
    if res.returncode != 0 or not out.is_file():
        raise RefusedFile(f"{name}: the {kind.upper()} video cannot be read to the end")
    at = min(1.0, video.duration_s / 2)
    res = _run([ffmpeg, "-v", "error", "-nostdin", "-y", "-ss", f"{at:.3f}", "-i", str(out), "-frames:v", "1",
                "-vf", "scale='min(1280,iw)':-2", "-map_metadata", "-1", "-f", "image2", "-c:v", "mjpeg",
                str(poster)], timeout, name, "making the poster frame")
    if res.returncode != 0 or not poster.is_file():
        raise RefusedFile(f"{name}: no frame of the video can be decoded")
