"""Errors that carry a user-facing message and an HTTP status."""

from __future__ import annotations


class AmberWatchError(Exception):
    """Base error: ``str(err)`` is shown to the user as is."""

    status_code = 500


class InputError(AmberWatchError):
    """Bad input from the user (HTTP 400 / CLI exit 2)."""

    status_code = 400


class NotFoundError(AmberWatchError):
    status_code = 404


class ForbiddenPathError(InputError):
    status_code = 403


class UnauthorizedError(AmberWatchError):
    """No key, or a key that is unknown or revoked (HTTP 401)."""

    status_code = 401


class PermissionDeniedError(AmberWatchError):
    """A valid key whose role may not do this (HTTP 403)."""

    status_code = 403


class PayloadTooLargeError(InputError):
    status_code = 413


class RateLimitedError(AmberWatchError):
    status_code = 429

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after
