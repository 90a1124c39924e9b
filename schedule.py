"""Outage schedules (iCalendar) — a minimal stand-in on this branch (issue 26's surfaces).

Only the `Window` type and `window_at` that the messages and the status page use; the real
module (parsing, fetching, caching, statistics, reports) replaces this file in the merge.
Callers import it lazily and treat a missing `windows` like an unreadable schedule.
"""

from dataclasses import dataclass
from datetime import datetime


@dataclass(frozen=True)
class Window:
    """A planned outage: [start, end) as aware UTC datetimes; `possible` when not definite."""

    start: datetime
    end: datetime
    possible: bool
    summary: str


def window_at(windows, ts):
    """The window in force at `ts` (a definite one before a possible one), or None."""
    inside = [window for window in windows if window.start <= ts < window.end]
    return min(inside, key=lambda window: (window.possible, window.start)) if inside else None
