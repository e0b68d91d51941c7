"""Answers, rejection reasons, the agreement rule and the settling of an item's final answer.

Agreement rule (docs/validation.md): an item waits for ``N`` independent votes (``votes_needed``, the setting
``AMBERWATCH_VALIDATION_VOTES``, default 3). With all N in, it is *agreed* when at least ⌈2N/3⌉ of them give the same
answer other than ``unsure`` (2 of 3, 4 of 5); it is then ``confirmed`` (mining) or ``rejected`` (not mining, with
the reason most voters gave). Otherwise it is ``disputed`` and waits for an analyst. A field check of the site
overrides everything, then an analyst's decision, then the votes; a gold item's answer is the known one.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass
from typing import Literal

from amberwatch.errors import InputError

Answer = Literal["mining", "not_mining"]
VoteAnswer = Literal["mining", "not_mining", "unsure"]
ANSWERS: tuple[str, ...] = ("mining", "not_mining")
VOTE_ANSWERS: tuple[str, ...] = ("mining", "not_mining", "unsure")
STATUSES: tuple[str, ...] = ("unvalidated", "pending", "confirmed", "rejected", "disputed")
KINDS: tuple[str, ...] = ("detection", "site", "location")

# Where an item comes from, and its place in the queue (lower first). Gold items are mixed in with the uncertain
# ones so that volunteers cannot tell them apart.
SOURCE_PRIORITY: dict[str, int] = {"new_site": 0, "uncertain": 1, "gold": 1, "accuracy_sample": 2}

# Why something is not mining: code -> (English, Ukrainian)
REASONS: dict[str, tuple[str, str]] = {
    "bare_field": ("bare field", "оране поле"),
    "sand_road": ("sand road", "піщана дорога"),
    "beach": ("beach", "пляж"),
    "quarry": ("quarry", "кар'єр"),
    "clear_cut": ("clear-cut", "суцільна рубка"),
    "village": ("village", "село"),
    "cloud": ("cloud", "хмара"),
    "fish_pond": ("fish pond", "рибний ставок"),
    "other": ("other", "інше"),
}


@dataclass(frozen=True)
class Vote:
    answer: str
    reason: str | None = None


@dataclass(frozen=True)
class Settled:
    """An item's state: its status and, when decided, the final answer, its reason and what decided it."""

    status: str
    answer: str | None = None
    reason: str | None = None
    via: str | None = None  # votes, expert, field_check, gold


def check_answer(answer: str, reason: str | None, *, allow_unsure: bool) -> tuple[str, str | None]:
    """A valid (answer, reason): ``not_mining`` needs a reason from :data:`REASONS`; other answers take none."""
    allowed = VOTE_ANSWERS if allow_unsure else ANSWERS
    if answer not in allowed:
        raise InputError(f"answer {str(answer)[:20]!r} is not one of {', '.join(allowed)}")
    if answer == "not_mining":
        if reason is None:
            raise InputError(f"a not_mining answer needs a reason: one of {', '.join(REASONS)}")
        if reason not in REASONS:
            raise InputError(f"reason {str(reason)[:30]!r} is not one of {', '.join(REASONS)}")
        return answer, reason
    if reason is not None:
        raise InputError(f"a reason is given only with not_mining, not with {answer}")
    return answer, None


def votes_to_agree(n: int) -> int:
    """⌈2N/3⌉: how many of the N votes must give the same (non-unsure) answer."""
    return math.ceil(2 * n / 3)


def from_votes(votes: list[Vote], needed: int) -> Settled:
    """The status the votes alone give (see the module's agreement rule)."""
    if not votes:
        return Settled("unvalidated")
    if len(votes) < needed:
        return Settled("pending")
    counts = Counter(v.answer for v in votes if v.answer != "unsure")
    if counts:
        answer, n = max(counts.items(), key=lambda kv: (kv[1], kv[0] == "mining"))
        if n >= votes_to_agree(needed) and list(counts.values()).count(n) == 1:
            return _final(answer, _reason([v for v in votes if v.answer == "not_mining"]), "votes")
    return Settled("disputed")


def settle(votes: list[Vote], needed: int, *, gold: str | None = None, expert: Vote | None = None,
           field_state: str | None = None) -> Settled:
    """The item's state: a field check (its observed state) beats an expert decision, which beats a gold answer,
    which beats the votes."""
    if field_state is not None:
        return _final("not_mining" if field_state == "not_mining" else "mining",
                      "other" if field_state == "not_mining" else None, "field_check")
    if expert is not None:
        return _final(expert.answer, expert.reason, "expert")
    if gold is not None:
        return _final(gold, None, "gold")
    return from_votes(votes, needed)


def _final(answer: str, reason: str | None, via: str) -> Settled:
    return Settled("confirmed" if answer == "mining" else "rejected", answer,
                   reason if answer == "not_mining" else None, via)


def _reason(rejections: list[Vote]) -> str:
    """The reason most of the not-mining votes gave (ties: the first in :data:`REASONS`)."""
    counts = Counter(v.reason for v in rejections if v.reason)
    order = list(REASONS)
    return min(counts, key=lambda r: (-counts[r], order.index(r))) if counts else "other"


def reliability(gold_votes: list[tuple[str, str]]) -> float | None:
    """Share of a volunteer's answers on gold items (answer, expected) that were right (``unsure`` counts as
    wrong); None without any."""
    if not gold_votes:
        return None
    return sum(1 for answer, expected in gold_votes if answer == expected) / len(gold_votes)
