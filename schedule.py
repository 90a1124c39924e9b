"""Published outage schedules (iCalendar) held against the readings.

    python schedule.py check                          # fetch the sources, list the next windows
    python schedule.py report --device NAME --from 2025-06-01 --to 2025-06-30 [--csv]

`schedule_ics` lists iCalendar sources (an http(s) URL or a file path): every event is a planned
outage, a *window*; an event whose summary matches `schedule_possible` is a "possible" window
rather than a definite one. URLs are fetched at most once an hour (conditional requests, short
timeout) into a cache beside the buffer; a feed that fails keeps its last good copy. File paths
are read directly (their last good copy is kept too).

The statistics the aggregator adds to pin sensors' hours and days items (README, Schedules):
`scheduled` minutes of the period inside a definite window, `off_scheduled` OFF readings inside
one, `off_unscheduled` OFF readings outside every window (definite or possible), `on_scheduled`
ON readings inside a definite window; `schedule` the windows used, so that a recomputation gives
the same answer; `outage_schedule` what each outage starting in the period had to do with them.
"""

import datetime as dt
import hashlib
import json
import logging
import re
import sys
from dataclasses import dataclass

from utils import SCHEDULE_POSSIBLE, ConfigError, shown

log = logging.getLogger("schedule")

UTC = dt.timezone.utc
MINUTE = dt.timedelta(minutes=1)
REFRESH_EVERY = dt.timedelta(hours=1)  # a source is asked at most this often
FETCH_TIMEOUT_SECONDS = 10  # an hourly job must not hang on a feed
MAX_FEED_BYTES = 5 * 2**20
CACHE_DIR_NAME = "schedule"
LAMBDA_CACHE_DIR = "/tmp/blackout-schedule"
USER_AGENT = "blackout-monitor (+https://github.com/; schedule fetch)"
DEFAULT_POSSIBLE = SCHEDULE_POSSIBLE  # utils: the default of `schedule_possible`
# outages recorded in `outage_schedule` per item: a relay that flaps every minute must not
# grow a days item towards DynamoDB's 400 KB (each record is about 200 bytes, a write unit a
# kilobyte); the rest are counted in `outage_schedule_more`
MAX_OUTAGE_RECORDS = 48
# how far parse_ics looks either side of a query, so that floating and all-day events whose
# UTC time is a zone offset away are not missed (they are cut to the query afterwards)
QUERY_MARGIN = dt.timedelta(days=1)


class ScheduleError(Exception):
    """A schedule source is not a usable iCalendar file (garbage, HTML, unreadable)."""


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


@dataclass(frozen=True)
class OutageMatch:
    """An outage [start, end) measured against its window (None: not in the schedule).

    `started`: minutes the outage began after the window began (negative: before it);
    `ended`: minutes the power came back after the window's end (negative: before it),
    None while the outage lasts."""
    window: "Window | None"
    started: "int | None"
    ended: "int | None"

    @property
    def scheduled(self):
        return self.window is not None


@dataclass
class SourceResult:
    """What refresh() did with one source (and what `status` says of it)."""
    source: str  # shown form: a URL's scheme and host only (a private feed's path is a secret)
    outcome: str  # "updated", "not modified", "fresh", "failed", "file"
    error: "str | None" = None
    good_at: "dt.datetime | None" = None  # when the copy in use was last known good


# --- configuration ----------------------------------------------------------------------------

def is_url(source):
    return "://" in source


def source_label(source):
    """A source as output may show it: a URL's scheme and host (its path may be a private token)."""
    if not is_url(source):
        from utils import PROJECT_DIR

        return source[len(str(PROJECT_DIR)) + 1:] if source.startswith(f"{PROJECT_DIR}/") else source
    from urllib.parse import urlsplit

    parts = urlsplit(source)
    return f"{parts.scheme}://{parts.hostname}{'' if parts.port is None else f':{parts.port}'}/…"


def configured(config):
    return bool(config.get("schedule_ics"))


# --- parsing ----------------------------------------------------------------------------------

def _zone(name):
    from utils import zone

    return zone(name) if isinstance(name, str) or name is None else name


def _as_utc(value, zone, is_end=False):
    """A DTSTART/DTEND value in UTC: a date is local midnight, a floating time the user's zone."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=zone)
        return value.astimezone(UTC)
    if isinstance(value, dt.date):
        return dt.datetime.combine(value, dt.time(), tzinfo=zone).astimezone(UTC)
    raise ScheduleError(f"an event's time is not a date or time: {shown(value)}")


def _calendar(data):
    """The icalendar Calendar of `data` (bytes); ScheduleError for anything else."""
    import icalendar

    if isinstance(data, str):
        data = data.encode("utf-8")
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:15].upper()
    if not head.startswith(b"BEGIN:VCALENDAR"):
        what = "an HTML page" if head.startswith((b"<!DOCTYPE", b"<HTML", b"<")) else "not iCalendar"
        raise ScheduleError(f"{what} (no BEGIN:VCALENDAR at its start)")
    try:
        calendar = icalendar.Calendar.from_ical(data)
    except (ValueError, KeyError, IndexError, TypeError) as error:
        raise ScheduleError(f"unreadable iCalendar: {' '.join(str(error).split())[:120]}") from None
    if isinstance(calendar, list):  # several VCALENDARs in one file: the first
        calendar = calendar[0]
    return calendar


def check_ics(data, now=None):
    """ScheduleError unless `data` is an iCalendar file whose events around `now` expand (a
    feed's body is checked before it is kept: a broken one must not replace a good copy)."""
    if now is None:
        _calendar(data)
    else:
        parse_ics(data, now - dt.timedelta(days=1), now + dt.timedelta(days=7))


def parse_ics(data, start, end, possible_pattern=DEFAULT_POSSIBLE, timezone=None):
    """The windows of the events of iCalendar `data` that overlap [start, end), in start order.

    TZID, UTC and floating times (floating: in `timezone`, the user's), all-day events (the
    whole local day), RRULE/RDATE with EXDATE; an event without an end lasts its day if
    all-day, else nothing (and is left out). Raises ScheduleError for anything not iCalendar.
    """
    import recurring_ical_events

    zone = _zone(timezone)
    calendar = _calendar(data)
    possible = re.compile(possible_pattern or DEFAULT_POSSIBLE)
    try:
        events = recurring_ical_events.of(calendar).between(start - QUERY_MARGIN, end + QUERY_MARGIN)
    except Exception as error:  # the library raises many kinds for a broken RRULE or date
        raise ScheduleError(f"can't expand its events: {' '.join(str(error).split())[:120]}") from None
    windows = []
    for event in events:
        if event.name != "VEVENT":
            continue
        try:
            begin = event.decoded("DTSTART")
            if "DTEND" in event:
                finish = event.decoded("DTEND")
            elif "DURATION" in event:
                finish = begin + event.decoded("DURATION")
            else:
                finish = begin + dt.timedelta(days=1) if not isinstance(begin, dt.datetime) else begin
        except (KeyError, ValueError, TypeError) as error:
            raise ScheduleError(f"an event has no usable DTSTART/DTEND ({error})") from None
        window_start, window_end = _as_utc(begin, zone), _as_utc(finish, zone)
        if window_end <= window_start or window_end <= start or window_start >= end:
            continue
        summary = str(event.get("SUMMARY", "")).strip()
        windows.append(Window(window_start, window_end, bool(possible.search(summary)), summary))
    return sorted(set(windows), key=lambda window: (window.start, window.end, window.possible, window.summary))


def merged(windows):
    """Overlapping or touching windows of one kind as one (a feed of hourly events becomes
    18:00-22:00); definite and possible windows stay apart. In start order."""
    out = []
    for possible in (False, True):
        current = None
        for window in sorted((w for w in windows if w.possible == possible), key=lambda w: (w.start, w.end)):
            if current is not None and window.start <= current.end:
                if window.end > current.end:
                    current = Window(current.start, window.end, possible, current.summary)
                continue
            if current is not None:
                out.append(current)
            current = window
        if current is not None:
            out.append(current)
    return sorted(out, key=lambda window: (window.start, window.possible))


def window_at(windows, ts):
    """The window holding instant `ts` (a definite one before a possible one), or None."""
    holding = [window for window in windows if window.start <= ts < window.end]
    if not holding:
        return None
    return min(holding, key=lambda window: (window.possible, window.start))


def minutes_between(earlier, later):
    """Whole minutes from `earlier` to `later` (negative when later is before), rounded."""
    return round((later - earlier).total_seconds() / 60)


def match_outage(windows, start, end=None):
    """The window an outage [start, end) (end None: still off) falls in, and how many minutes it
    started and ended after the window's start and end (negative: before).

    The window is the one it overlaps most (a definite one before a possible one); an outage
    that overlaps none is not in the schedule. An outage still under way is measured from its
    start's minute on.
    """
    until = end if end is not None else start + MINUTE
    best, best_key = None, None
    for window in windows:
        overlap = min(until, window.end) - max(start, window.start)
        if overlap <= dt.timedelta(0):
            continue
        key = (window.possible, -overlap, window.start)
        if best_key is None or key < best_key:
            best, best_key = window, key
    if best is None:
        return OutageMatch(None, None, None)
    return OutageMatch(best, minutes_between(best.start, start),
                       None if end is None else minutes_between(best.end, end))


# --- statistics of a period ----------------------------------------------------------------------

def covered_minutes(windows, start, end):
    """Minutes of [start, end) inside the union of `windows`."""
    spans = sorted((max(w.start, start), min(w.end, end)) for w in windows if w.start < end and w.end > start)
    total, reach = dt.timedelta(0), None
    for low, high in spans:
        if reach is not None and low < reach:
            low = reach
        if high > low:
            total += high - low
            reach = high
        reach = max(reach, high) if reach is not None else high
    return int(total.total_seconds() // 60)


def in_any(windows, minute):
    """Whether the reading of `minute` (its whole minute) lies inside one of `windows`."""
    return any(window.start <= minute < window.end for window in windows)


def period_stats(readings, start, end, now, windows, previous=None, runs=(), open_runs=()):
    """The schedule statistics of a pin sensor's period [start, end) (see the module's doc).

    `readings` (minute, value) of the period; `windows` those overlapping it; `previous` the
    value of the last reading before the period (for the outages, as aggregation.pin_stats);
    `runs` the OFF runs (first, last) measured whole around it, `open_runs` those not ended by
    an ON reading yet. `scheduled` counts the minutes up to and including the current one, as
    `expected` does.
    """
    definite = [window for window in windows if not window.possible]
    last = min(end, max(now.replace(second=0, microsecond=0) + MINUTE,
                        readings[-1][0] + MINUTE if readings else start))
    stats = {
        "scheduled": covered_minutes(definite, start, max(start, last)),
        "off_scheduled": sum(1 for minute, value in readings if value == 0 and in_any(definite, minute)),
        "off_unscheduled": sum(1 for minute, value in readings if value == 0 and not in_any(windows, minute)),
        "on_scheduled": sum(1 for minute, value in readings if value == 1 and in_any(definite, minute)),
        **stored_pairs(windows),
    }
    outages = []
    for minute, value in readings:
        if value == 0 and previous == 1:
            run = next((run for run in runs if run[0] == minute), (minute, minute))
            end_of_run = None if run in open_runs else run[1] + MINUTE
            outages.append(outage_record(windows, minute, end_of_run))
        previous = value
    stats.update(capped(outages))
    return stats


def capped(records, more=0):
    """`outage_schedule` of at most MAX_OUTAGE_RECORDS records, and how many more there were."""
    more += max(0, len(records) - MAX_OUTAGE_RECORDS)
    return {"outage_schedule": records[:MAX_OUTAGE_RECORDS], **({"outage_schedule_more": more} if more else {})}


def outages_reach(start, end, now, runs=(), open_runs=()):
    """The end of the span whose windows a period's statistics need: the period, and the OFF
    runs starting in it to their end (now, for one still under way), so that an outage that
    begins before its window, in an earlier hour, still finds it."""
    reach = end
    for run in runs:
        if start <= run[0] < end:
            reach = max(reach, now if run in open_runs else run[1] + MINUTE)
    return reach


def outage_record(windows, start, end):
    """How an item stores one outage against the schedule."""
    match = match_outage(windows, start, end)
    record = {"start": start.isoformat(), "scheduled": match.scheduled}
    if end is not None:
        record["end"] = end.isoformat()
    if match.scheduled:
        record.update(window=match.window.pair(), possible=match.window.possible, started=match.started)
        if match.ended is not None:
            record["ended"] = match.ended
    return record


def day_from_parts(pieces, start, end, now, windows):
    """The schedule statistics of a day from its pieces: (low, high, statistics or None) of each
    hour (or edge piece) of [start, end). A piece computed with the schedule gives its own counts
    and `scheduled` (with the windows it stored: the day agrees with its hours even when the
    schedule changed between them); a piece without statistics (no reading, or aggregated
    before the schedule) takes its `scheduled` from the day's `windows`."""
    definite = [window for window in windows if not window.possible]
    last = min(end, now.replace(second=0, microsecond=0) + MINUTE)
    parts = [part for _low, _high, part in pieces if part and "off_scheduled" in part]
    scheduled = sum(part["scheduled"] if part and "scheduled" in part
                    else covered_minutes(definite, low, max(low, min(high, last)))
                    for low, high, part in pieces)
    return {
        "scheduled": scheduled,
        "off_scheduled": sum(part["off_scheduled"] for part in parts),
        "off_unscheduled": sum(part["off_unscheduled"] for part in parts),
        "on_scheduled": sum(part["on_scheduled"] for part in parts),
        **stored_pairs(windows),
        **capped([record for part in parts for record in part.get("outage_schedule", [])],
                 sum(part.get("outage_schedule_more", 0) for part in parts)),
    }


def stored_pairs(windows):
    """The item attributes that keep `windows`: `schedule` (definite), `schedule_possible`."""
    return {"schedule": [window.pair() for window in windows if not window.possible],
            "schedule_possible": [window.pair() for window in windows if window.possible]}


def stored_windows(item):
    """The windows a stored item used (its `schedule` and `schedule_possible`), or None when it
    was computed without a schedule (or they are unreadable)."""
    if not item or not isinstance(item.get("schedule"), list):
        return None
    windows = []
    for name, possible in (("schedule", False), ("schedule_possible", True)):
        pairs = item.get(name) or []
        if not isinstance(pairs, list):
            return None
        for pair in pairs:
            try:
                low, high = (dt.datetime.fromisoformat(text).astimezone(UTC) for text in pair)
            except (TypeError, ValueError, AttributeError):
                return None
            if high <= low:
                return None
            windows.append(Window(low, high, possible, ""))
    return sorted(windows, key=lambda window: (window.start, window.possible))


# --- the cache of sources -----------------------------------------------------------------------

def cache_dir(config):
    """Where fetched copies live: `schedule_cache`, else /tmp in a Lambda, else beside the buffer."""
    import os
    from pathlib import Path

    if config.get("schedule_cache"):
        return Path(config["schedule_cache"])
    if os.environ.get("AWS_LAMBDA_FUNCTION_NAME"):
        return Path(LAMBDA_CACHE_DIR)
    from utils import PROJECT_DIR

    return Path(config.get("buffer_dir") or PROJECT_DIR / "buffer") / CACHE_DIR_NAME


def _cache_name(source):
    return hashlib.sha256(source.encode("utf-8")).hexdigest()[:20]


def _read_meta(directory, source):
    try:
        meta = json.loads((directory / f"{_cache_name(source)}.json").read_text())
        return meta if isinstance(meta, dict) else {}
    except (OSError, ValueError):
        return {}


def _write(directory, name, text):
    import filebuffer

    directory.mkdir(parents=True, exist_ok=True)
    filebuffer.write_atomically(directory, name, text)


def _write_meta(directory, source, meta):
    _write(directory, f"{_cache_name(source)}.json", json.dumps(meta, sort_keys=True))


def _cached_copy(directory, source):
    try:
        return (directory / f"{_cache_name(source)}.ics").read_bytes()
    except OSError:
        return None


def _keep(directory, source, data, meta, now):
    _write(directory, f"{_cache_name(source)}.ics", data.decode("utf-8", "replace"))
    meta.update(good_at=now.isoformat(), error=None, failed_at=None)


def _iso(text):
    try:
        return dt.datetime.fromisoformat(text) if text else None
    except (TypeError, ValueError):
        return None


def _fetch(source, meta, timeout):
    """(status, body, headers) of a conditional GET of `source`; ScheduleError on failure."""
    import urllib.error
    import urllib.request

    headers = {"User-Agent": USER_AGENT, "Accept": "text/calendar, */*;q=0.5"}
    if meta.get("etag"):
        headers["If-None-Match"] = meta["etag"]
    if meta.get("last_modified"):
        headers["If-Modified-Since"] = meta["last_modified"]
    request = urllib.request.Request(source, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            body = response.read(MAX_FEED_BYTES + 1)
            if len(body) > MAX_FEED_BYTES:
                raise ScheduleError(f"larger than {MAX_FEED_BYTES // 2**20} MiB")
            return response.status, body, response.headers
    except urllib.error.HTTPError as error:
        if error.code == 304:
            return 304, b"", error.headers
        raise ScheduleError(f"HTTP {error.code}") from None
    except (urllib.error.URLError, OSError, ValueError) as error:
        reason = getattr(error, "reason", error)
        if "timed out" in str(reason):
            text = "timed out"
        else:  # "Connection refused", not "[Errno 111] Connection refused"
            text = " ".join((getattr(reason, "strerror", None) or str(reason)).split())[:100]
        raise ScheduleError(text) from None


def refresh(config, now=None, timeout=None, force=False, quiet=False):
    """Fetch the URL sources whose copy is older than an hour (all of them with `force`), and
    read the file sources; keep what is good. Never raises for a bad feed: each failure is
    logged and recorded beside the copy (for `status`); `quiet`: at INFO, for a caller that
    prints the results itself. Returns a SourceResult per source."""
    from utils import utc_now

    now = now or utc_now()
    timeout = FETCH_TIMEOUT_SECONDS if timeout is None else timeout
    directory = cache_dir(config)
    results = []
    for source in config.get("schedule_ics") or ():
        label = source_label(source)
        meta = _read_meta(directory, source)
        try:
            if not is_url(source):
                results.append(_read_file_source(directory, source, meta, now, quiet))
                continue
            asked = _iso(meta.get("asked_at"))
            if not force and asked is not None and now - asked < REFRESH_EVERY and asked <= now:
                results.append(SourceResult(label, "fresh", meta.get("error"), _iso(meta.get("good_at"))))
                continue
            meta["asked_at"] = now.isoformat()
            try:
                status, body, headers = _fetch(source, meta, timeout)
                if status == 304:
                    if _cached_copy(directory, source) is None:
                        raise ScheduleError("304 Not Modified but no copy is kept")
                    meta.update(good_at=now.isoformat(), error=None, failed_at=None)
                    outcome = "not modified"
                else:
                    check_ics(body, now)
                    _keep(directory, source, body, meta, now)
                    meta["etag"] = headers.get("ETag")
                    meta["last_modified"] = headers.get("Last-Modified")
                    outcome = "updated"
                results.append(SourceResult(label, outcome, None, _iso(meta.get("good_at"))))
            except ScheduleError as error:
                # said once (cron mails warnings), then logged each hour until it works again
                level = logging.INFO if quiet or meta.get("error") == str(error) else logging.WARNING
                meta.update(error=str(error), failed_at=now.isoformat())
                log.log(level, "schedule %s: %s; %s", label, error, kept_text(meta))
                results.append(SourceResult(label, "failed", str(error), _iso(meta.get("good_at"))))
            _write_meta(directory, source, meta)
        except OSError as error:  # the cache can't be written: say so, go on without it
            log.warning("schedule %s: can't keep its copy in %s: %s", label, directory, error)
            results.append(SourceResult(label, "failed", f"cache: {error}", None))
    return results


def kept_text(meta):
    good = meta.get("good_at")
    return f"the last good copy (from {good}) is kept" if good else "no good copy yet"


def _read_file_source(directory, source, meta, now, quiet=False):
    label = source_label(source)
    try:
        with open(source, "rb") as handle:
            data = handle.read(MAX_FEED_BYTES + 1)
        if len(data) > MAX_FEED_BYTES:
            raise ScheduleError(f"larger than {MAX_FEED_BYTES // 2**20} MiB")
        check_ics(data, now)
    except (OSError, ScheduleError) as error:
        text = error.strerror if isinstance(error, OSError) and error.strerror else str(error)
        if meta.get("error") != text:
            log.log(logging.INFO if quiet else logging.WARNING, "schedule %s: %s; %s", label, text, kept_text(meta))
            meta.update(error=text, failed_at=now.isoformat())
            _write_meta(directory, source, meta)
        return SourceResult(label, "failed", text, _iso(meta.get("good_at")))
    if _cached_copy(directory, source) != data or meta.get("error"):
        _keep(directory, source, data, meta, now)
        _write_meta(directory, source, meta)
    return SourceResult(label, "file", None, _iso(meta.get("good_at")))


def source_states(config):
    """[(label, meta)] of each source as last refreshed: `error`, `failed_at`, `good_at`."""
    directory = cache_dir(config)
    return [(source_label(source), _read_meta(directory, source)) for source in config.get("schedule_ics") or ()]


def status_lines(config, now, zone=None):
    """`dynamo.py status`'s lines about the schedule: only what needs saying (a failed feed)."""
    lines = []
    for label, meta in source_states(config):
        if not meta.get("error"):
            continue
        good = _iso(meta.get("good_at"))
        kept = (f"the last good copy, {_age(now - good)} old, is used" if good
                else "no good copy yet: outages are not compared with it")
        lines.append(f"schedule {label}: failed ({meta['error']}) at {_clock(_iso(meta.get('failed_at')), zone)}; {kept}")
    return lines


def _age(delta):
    minutes = max(0, int(delta.total_seconds() // 60))
    if minutes < 120:
        return f"{minutes} min"
    if minutes < 48 * 60:
        return f"{minutes // 60} h"
    return f"{minutes // 1440} days"


def _clock(ts, zone):
    if ts is None:
        return "?"
    return ts.astimezone(zone or UTC).strftime("%Y-%m-%d %H:%M %Z")


class Snapshot:
    """The windows of every source's copy, parsed once and expanded on demand (one aggregation).
    windows() is None when a copy can't be expanded over the span asked (then nothing is known)."""

    def __init__(self, config):
        self.config = config
        self.zone = _zone(config.get("timezone"))
        self.pattern = config.get("schedule_possible") or DEFAULT_POSSIBLE
        directory = cache_dir(config)
        self.copies = []
        self.missing = []
        for source in config.get("schedule_ics") or ():
            data = _cached_copy(directory, source)
            if data is None and not is_url(source):
                try:
                    with open(source, "rb") as handle:
                        data = handle.read(MAX_FEED_BYTES)
                except OSError:
                    data = None
            if data is None:
                self.missing.append(source_label(source))
            else:
                self.copies.append((source_label(source), data))
        self._range, self._windows = None, []

    @property
    def complete(self):
        """Every source has a good copy (else statistics would count its windows as unscheduled)."""
        return bool(self.copies) and not self.missing

    def windows(self, start, end):
        if self._range is None or start < self._range[0] or end > self._range[1]:
            low = min(start, self._range[0]) if self._range else start
            high = max(end, self._range[1]) if self._range else end
            low, high = low - dt.timedelta(days=7), high + dt.timedelta(days=7)
            found = []
            for label, data in self.copies:
                try:
                    found += parse_ics(data, low, high, self.pattern, self.zone)
                except Exception as error:  # noqa: BLE001 (a feed never stops the aggregation)
                    log.warning("schedule %s: its copy can't be read from %s to %s (%s)", label, low.date(),
                                high.date(), error)
                    return None
            self._range, self._windows = (low, high), merged(found)
        return [window for window in self._windows if window.start < end and window.end > start]


def windows(config, start, end, *, fetch=False, now=None):
    """The windows (merged, see `merged`) overlapping [start, end) of every `schedule_ics`
    source's kept copy; [] without a schedule. `fetch`: refresh() first. Never raises for a
    bad feed."""
    return known_windows(config, start, end, fetch=fetch, now=now) or []


def known_windows(config, start, end, *, fetch=False, now=None):
    """As `windows`, but None when some source has no good copy or its copy can't be read: a
    message must not say "not in the schedule" of a schedule it hasn't seen."""
    if not configured(config):
        return []
    if fetch:
        refresh(config, now)
    snapshot = Snapshot(config)
    return snapshot.windows(start, end) if snapshot.complete else None


# --- CLI ------------------------------------------------------------------------------------

KEYS = ("device", "table_prefix", "buffer_dir", "log_dir", "timezone", "schedule_ics", "schedule_possible",
        "schedule_cache")
CHECK_DAYS = 7


def build_parser():
    from utils import ArgumentParser, add_config_flags

    parser = ArgumentParser(prog="schedule.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    check = commands.add_parser("check", help="fetch the sources and list the next windows")
    add_config_flags(check, [key for key in KEYS if key not in ("device", "table_prefix")])
    check.add_argument("--days", type=int, default=CHECK_DAYS, metavar="N",
                       help=f"list the windows of the next N days (default {CHECK_DAYS})")
    check.add_argument("--from", dest="start", metavar="TIME", help="list from this time instead of now (ISO 8601)")
    report = commands.add_parser("report", help="outages against the schedule, per day and in total")
    add_config_flags(report, KEYS)
    report.add_argument("--sensor", default=None, metavar="PIN", help="the pin sensor (default: the device's only one)")
    report.add_argument("--from", dest="start", required=True, metavar="DATE", help="first local date")
    report.add_argument("--to", dest="end", required=True, metavar="DATE", help="last local date")
    report.add_argument("--csv", action="store_true", help="comma-separated values for a spreadsheet")
    return parser


def main(argv=None):
    from utils import load_config, setup_logging

    args = build_parser().parse_args(argv)
    config = load_config(args, KEYS)
    setup_logging(config["log_dir"], "schedule")
    if not configured(config):
        raise ConfigError("no schedule: set schedule_ics (a list of iCalendar URLs or files) in config.toml "
                          "or BLACKOUT_SCHEDULE_ICS (README, Schedules)")
    if args.command == "check":
        return check_command(config, args)
    return report_command(config, args)


def check_command(config, args):
    from utils import parse_time, utc_now

    if not 1 <= args.days <= 366:
        raise ConfigError(f"--days {args.days} must be from 1 to 366")
    now = parse_time(args.start, "--from") if args.start else utc_now()
    zone = _zone(config.get("timezone"))
    for result in refresh(config, now, force=True, quiet=True):  # each failure is printed here
        if result.outcome == "failed":
            kept = f"last good copy from {_clock(result.good_at, zone)}" if result.good_at else "no copy kept"
            print(f"{result.source}: FAILED ({result.error}); {kept}")
        else:
            print(f"{result.source}: {result.outcome}")
    snapshot = Snapshot(config)
    found = snapshot.windows(now, now + dt.timedelta(days=args.days)) or []
    print(f"windows from {_clock(now, zone)} for {args.days} days ({zone.key}): {len(found)}")
    for window in found:
        print("  " + window_text(window, zone))
    if snapshot.missing:
        from utils import JobFailed

        raise JobFailed(f"no good copy of {', '.join(snapshot.missing)}: check its URL or path")
    return 0


# --- the report -------------------------------------------------------------------------------

REPORT_COLUMNS = ("date", "scheduled_h", "off_scheduled_h", "on_scheduled_h", "off_unscheduled_h", "outages",
                  "outages_scheduled", "started_late", "started_late_median_min", "started_early",
                  "started_early_median_min", "ended_early", "ended_early_median_min")
MAX_REPORT_DAYS = 400


def _median(values):
    import statistics

    return float(statistics.median(values)) if values else None


def report_row(label, items):
    """One line of the report from days items (plain) with schedule statistics."""
    records = [record for item in items for record in item.get("outage_schedule") or []]
    in_schedule = [record for record in records if record.get("scheduled")]
    late = [record["started"] for record in in_schedule if record.get("started", 0) > 0]
    early = [-record["started"] for record in in_schedule if record.get("started", 0) < 0]
    back_early = [-record["ended"] for record in in_schedule if record.get("ended", 0) < 0]
    total = {name: sum(item.get(name, 0) for item in items)
             for name in ("scheduled", "off_scheduled", "on_scheduled", "off_unscheduled")}
    return {
        "date": label,
        "scheduled_h": round(total["scheduled"] / 60, 2),
        "off_scheduled_h": round(total["off_scheduled"] / 60, 2),
        "on_scheduled_h": round(total["on_scheduled"] / 60, 2),
        "off_unscheduled_h": round(total["off_unscheduled"] / 60, 2),
        "outages": len(records),
        "outages_scheduled": len(in_schedule),
        "started_late": len(late), "started_late_median_min": _median(late),
        "started_early": len(early), "started_early_median_min": _median(early),
        "ended_early": len(back_early), "ended_early_median_min": _median(back_early),
    }


def report_rows(days):
    """[(row)] per local date of `days` ({date: days item or None}), then the total of those
    compared with the schedule."""
    rows, compared = [], []
    for day, item in sorted(days.items()):
        if item is None or "off_scheduled" not in item:
            rows.append({"date": day.isoformat(), "note": "no readings" if item is None
                         else "aggregated without the schedule (aggregate.py --rebuild --from/--to applies it)"})
            continue
        compared.append(item)
        rows.append(report_row(day.isoformat(), [item]))
    rows.append(report_row("total", compared))
    return rows


def _minutes_text(count, median):
    return f"{count}" if not count else f"{count} ({median:g} min)"


def report_text(rows, title):
    lines = [title,
             f"{'date':<10}  {'scheduled':>9}  {'off in it':>9}  {'on in it':>8}  {'off outside':>11}  "
             f"{'outages':>7}  {'in schedule':>11}  {'started late':>13}  {'started early':>13}  {'back early':>13}"]
    for row in rows:
        if "note" in row:
            lines.append(f"{row['date']:<10}  {row['note']}")
            continue
        lines.append(
            f"{row['date']:<10}  {row['scheduled_h']:>7.2f} h  {row['off_scheduled_h']:>7.2f} h  "
            f"{row['on_scheduled_h']:>6.2f} h  {row['off_unscheduled_h']:>9.2f} h  {row['outages']:>7}  "
            f"{row['outages_scheduled']:>11}  "
            f"{_minutes_text(row['started_late'], row['started_late_median_min']):>13}  "
            f"{_minutes_text(row['started_early'], row['started_early_median_min']):>13}  "
            f"{_minutes_text(row['ended_early'], row['ended_early_median_min']):>13}")
    return "\n".join(lines)


def report_csv(rows):
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=REPORT_COLUMNS + ("note",), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: "" if row.get(name) is None else row.get(name) for name in REPORT_COLUMNS + ("note",)})
    return out.getvalue().rstrip("\n")


def days_items(client, config, device, sensor, first, last):
    """{local date: plain days item or None} of first..last (one Query per local month)."""
    import dynamo
    import untrusted

    table = dynamo.table_names(config["table_prefix"])["days"]
    found, month = {}, first.replace(day=1)
    while month <= last:
        pk, _sk = dynamo.day_key(device, sensor, month)
        items = dynamo.query_all(client, TableName=table, KeyConditionExpression="pk = :pk",
                                 ExpressionAttributeValues={":pk": {"S": pk}})
        for item in untrusted.checked(items, report_item, "days", device, sensor):
            found[dynamo.period_start(item["pk"], item["sk"]).date()] = item
        month = (month + dt.timedelta(days=32)).replace(day=1)
    return {first + dt.timedelta(days=n): found.get(first + dt.timedelta(days=n))
            for n in range((last - first).days + 1)}


def report_item(item, device, sensor):
    """A days item of device and sensor as plain Python, its schedule statistics checked
    (untrusted.BadItem otherwise: a Pi's data is untrusted)."""
    import dynamo
    import untrusted

    untrusted.period_item(item, device, sensor, "days")
    item = dynamo.plain(item)
    for name in ("scheduled", "off_scheduled", "on_scheduled", "off_unscheduled"):
        value = item.get(name, 0)
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 1500:
            raise untrusted.BadItem(f"{name} is not a count of minutes")
    records = item.get("outage_schedule", [])
    if not isinstance(records, list) or not all(
            isinstance(record, dict) and all(isinstance(record.get(name, 0), int) and not isinstance(record.get(name, 0), bool)
                                             for name in ("started", "ended")) for record in records):
        raise untrusted.BadItem("outage_schedule is not a list of outages")
    return item


def report_command(config, args, client=None):
    import dynamo
    from aggregate import parse_date
    from utils import JobFailed

    first, last = parse_date(args.start, "--from"), parse_date(args.end, "--to")
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    if (last - first).days + 1 > MAX_REPORT_DAYS:
        raise ConfigError(f"--from {first} --to {last} is more than {MAX_REPORT_DAYS} days")
    if args.sensor is not None and not re.fullmatch(r"[0-9]{1,2}", args.sensor):
        raise ConfigError(f"--sensor {shown(args.sensor)} is not a pin number")
    device = config["device"]
    try:
        client = client or dynamo.aws_client()
        sensors = [args.sensor] if args.sensor else [
            sensor for sensor in dynamo.sensors_of(client, dynamo.table_names(config["table_prefix"])["minutes"], device)
            if sensor != "bme280"]
        if not sensors:
            raise ConfigError(f"device {device} has no pin sensor's readings stored")
        if len(sensors) > 1:
            raise ConfigError(f"device {device} has pin sensors {', '.join(sensors)}: choose one with --sensor")
        days = days_items(client, config, device, sensors[0], first, last)
    except dynamo.CloudUnreachable as error:
        raise JobFailed(f"DynamoDB unreachable: {error}") from None
    rows = report_rows(days)
    zone = _zone(config.get("timezone"))
    if args.csv:
        print(report_csv(rows))
    else:
        print(report_text(rows, f"device {device} sensor {sensors[0]}, {first} to {last} ({zone.key}): "
                                "hours, and outages against the schedule (median minutes)"))
    return 0


def window_text(window, zone):
    start, end = window.start.astimezone(zone), window.end.astimezone(zone)
    same_day = (end - MINUTE).date() == start.date()
    end_text = f"{end:%H:%M}" if same_day else f"{end:%a %Y-%m-%d %H:%M}"
    kind = "possible" if window.possible else "definite"
    return f"{start:%a %Y-%m-%d %H:%M}–{end_text}  {kind:8}  {window.summary}".rstrip()


if __name__ == "__main__":
    from utils import run_cli

    sys.exit(run_cli(main))
