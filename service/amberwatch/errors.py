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
