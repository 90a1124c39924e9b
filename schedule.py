"""Outage schedules (iCalendar) — a minimal stand-in on this branch (issue 26's surfaces).

Only the `Window` type and `window_at` that the messages and the status page use; the real
module (parsing, fetching, caching, statistics, reports) replaces this file in the merge.
Callers import it lazily and treat a missing `windows` like an unreadable schedule.
"""

import datetime as dt
from dataclasses import dataclass


@dataclass(frozen=True)
class Window:
    """One planned outage: [start, end) in aware UTC datetimes."""
    start: dt.datetime
    end: dt.datetime
    possible: bool
    summary: str

    def pair(self):
        """[start, end] as ISO 8601 strings: how an item stores it (`schedule` holds the definite
        windows, `schedule_possible` the possible ones)."""
        return [self.start.isoformat(), self.end.isoformat()]


def window_at(windows, ts):
    """The window holding instant `ts` (a definite one before a possible one), or None."""
    holding = [window for window in windows if window.start <= ts < window.end]
    if not holding:
        return None
    return min(holding, key=lambda window: (window.possible, window.start))
