"""Crowd reports, the pure part: what an uploaded file is (decided by its content), whether it may be kept, and
making the copy that is stored (photos re-encoded without metadata, videos remuxed without metadata plus a
poster frame). No database and no HTTP here: ``usecases.crowd`` stores, ``web.crowd`` serves."""

from amberwatch.crowd.media import MediaLimits, RefusedMedia, StoredMedia, prepare

__all__ = ["MediaLimits", "RefusedMedia", "StoredMedia", "prepare"]
