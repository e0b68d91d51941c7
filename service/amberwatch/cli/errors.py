"""The command line's one error handler: an AmberWatchError becomes ``error: <message>`` and exit 2 (bad input)
or 1 (anything else of ours); every Typer app of the CLI uses this group class."""

from __future__ import annotations

from typing import Any

import typer
from typer.core import TyperGroup

from amberwatch.errors import AmberWatchError


class ErrorHandlingGroup(TyperGroup):
    def invoke(self, ctx: Any) -> Any:  # typer's own (vendored) click Context
        try:
            return super().invoke(ctx)
        except AmberWatchError as err:
            typer.secho(f"error: {err}", fg=typer.colors.RED, err=True)
            raise typer.Exit(2 if err.status_code < 500 else 1) from None


def typer_app(help: str, **kwargs: Any) -> typer.Typer:  # noqa: A002
    """A Typer app whose commands report our errors through the one handler."""
    return typer.Typer(cls=ErrorHandlingGroup, help=help, no_args_is_help=True, pretty_exceptions_enable=False,
                       **kwargs)
