"""One rule for starting a job's row (a run or a tracking job) again after its worker died."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, Protocol

Outcome = Literal["start", "done", "exhausted"]


class Attempted(Protocol):
    state: str
    attempts: int
    message: str | None
    error: str | None
    finished_at: datetime | None


def claim(row: Attempted, max_attempts: int, terminal: tuple[str, ...]) -> Outcome:
    """Count one more start of ``row`` (locked by the caller): 'done' when it is finished already, 'exhausted'
    (and failed now, with the reason) when it was started ``max_attempts`` times before, else 'start'."""
    if row.state in terminal:
        return "done"
    row.attempts = (row.attempts or 0) + 1
    if row.attempts > max_attempts:
        row.state, row.finished_at, row.message = "failed", datetime.now(UTC), "failed"
        row.error = (f"the worker stopped during each of {max_attempts} attempts (killed, or out of memory); "
                     "not retried again")
        return "exhausted"
    row.state = "running"
    return "start"
