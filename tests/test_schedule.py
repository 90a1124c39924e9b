"""Published outage schedules (schedule.py): parsing the publishers' feeds, fetching them
(ETag, 304, 404, a timeout, HTML), the statistics against them with known answers computed by
hand, the aggregator's stored windows, and `schedule.py check` / `report` as subprocesses.

Fixtures (tests/fixtures/), in the publishers' shapes:
- yasno_kyiv_group_3_1.ics: a per-group feed in Europe/Kyiv, one event an hour (18:00-22:00
  local on 2025-10-25, plus an overlapping 21:30-22:30), 02:00-05:00 on 2025-10-26 across
  the DST change (04:00 EEST -> 03:00 EET: 4 hours), a "Можливе відключення" (possible) and
  an event across midnight;
- eskom_sandton_west.ics: eskom-calendar's shape, UTC, a daily RRULE with an EXDATE, and an
  overlapping Stage 4 event;
- home_assistant_allday_floating.ics: an all-day event, a floating one, a possible one with DURATION.
"""

import csv
import datetime as dt
import http.server
import io
import threading
from pathlib import Path

import pytest

import aggregate
import dynamo
import filebuffer
import schedule
from schedule import Window
from tests.conftest import free_port, run_script
from tests.test_conformance import checker, strict_tables  # noqa: F401 (fixtures)
from utils import SCHEDULE_POSSIBLE, ConfigError, load_config

UTC = dt.timezone.utc
FIXTURES = Path(__file__).resolve().parent / "fixtures"
YASNO = FIXTURES / "yasno_kyiv_group_3_1.ics"
ESKOM = FIXTURES / "eskom_sandton_west.ics"
ALLDAY = FIXTURES / "home_assistant_allday_floating.ics"
DEVICE = "alex_rpi"
NOW = dt.datetime(2025, 11, 1, tzinfo=UTC)  # "now" for the scenario's readings, all in the past


def utc(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def spans(windows):
    return [(w.start.isoformat(), w.end.isoformat(), w.possible) for w in windows]


# --- parsing --------------------------------------------------------------------------------

def test_per_group_feed_in_kyiv_hourly_events_dst_and_midnight():
    found = schedule.parse_ics(YASNO.read_bytes(), utc("2025-10-25T00:00"), utc("2025-10-28T00:00"),
                               SCHEDULE_POSSIBLE, "Europe/Kyiv")
    assert len(found) == 8  # every event, as published
    assert spans(schedule.merged(found)) == [
        # 18:00-22:00 EEST (+03:00) in four hourly events, with 21:30-22:30 overlapping them
        ("2025-10-25T15:00:00+00:00", "2025-10-25T19:30:00+00:00", False),
        # 02:00 EEST to 05:00 EET: the clocks go back at 04:00, so 4 hours, not 3
        ("2025-10-25T23:00:00+00:00", "2025-10-26T03:00:00+00:00", False),
        ("2025-10-26T08:00:00+00:00", "2025-10-26T10:00:00+00:00", True),  # "Можливе відключення"
        # 23:00-01:00 EET (+02:00), across local midnight
        ("2025-10-26T21:00:00+00:00", "2025-10-26T23:00:00+00:00", False),
    ]


def test_load_shedding_feed_in_utc_with_rrule_and_exdate():
    found = schedule.parse_ics(ESKOM.read_bytes(), utc("2025-10-19T00:00"), utc("2025-11-01T00:00"))
    # COUNT=5 from the 20th, the 22nd excepted; the 21st's Stage 4 overlaps its Stage 2
    assert spans(schedule.merged(found)) == [
        ("2025-10-20T16:00:00+00:00", "2025-10-20T18:30:00+00:00", False),
        ("2025-10-21T16:00:00+00:00", "2025-10-21T20:30:00+00:00", False),
        ("2025-10-23T16:00:00+00:00", "2025-10-23T18:30:00+00:00", False),
        ("2025-10-24T16:00:00+00:00", "2025-10-24T18:30:00+00:00", False),
    ]
    assert {w.summary for w in found} == {"Sandton WEST (Stage 2)", "Sandton WEST (Stage 4)"}


@pytest.mark.parametrize("timezone, allday, floating", [
    # the whole local day; the floating time read in the user's zone
    ("Europe/Kyiv", ("2025-10-31T22:00:00+00:00", "2025-11-01T22:00:00+00:00"),
     ("2025-11-03T06:00:00+00:00", "2025-11-03T08:00:00+00:00")),
    ("UTC", ("2025-11-01T00:00:00+00:00", "2025-11-02T00:00:00+00:00"),
     ("2025-11-03T08:00:00+00:00", "2025-11-03T10:00:00+00:00")),
])
def test_all_day_and_floating_events_are_in_the_users_zone(timezone, allday, floating):
    found = schedule.parse_ics(ALLDAY.read_bytes(), utc("2025-10-30T00:00"), utc("2025-11-05T00:00"),
                               SCHEDULE_POSSIBLE, timezone)
    definite = [(w.start.isoformat(), w.end.isoformat()) for w in found if not w.possible]
    assert definite == [allday, floating]
    (possible,) = [w for w in found if w.possible]
    assert possible.end - possible.start == dt.timedelta(minutes=90)  # DURATION:PT90M


def test_only_the_events_overlapping_the_range():
    found = schedule.parse_ics(ESKOM.read_bytes(), utc("2025-10-23T17:00"), utc("2025-10-23T17:30"))
    assert spans(found) == [("2025-10-23T16:00:00+00:00", "2025-10-23T18:30:00+00:00", False)]


@pytest.mark.parametrize("data, says", [
    (b"", "not iCalendar"),
    (b"<!DOCTYPE html><html><body>Cloudflare: checking your browser</body></html>", "HTML"),
    (b"BEGIN:VCALENDAR\r\nthis is not a content line\r\nEND:VCALENDAR\r\n", "unreadable"),
    (b"BEGIN:VCALENDAR\r\nBEGIN:VEVENT\r\n", "unreadable"),
    (b"\x00\xff\xfe garbage", "not iCalendar"),
])
def test_garbage_raises_a_named_error(data, says):
    with pytest.raises(schedule.ScheduleError, match=says):
        schedule.parse_ics(data, utc("2025-10-01T00:00"), utc("2025-11-01T00:00"))


@pytest.mark.parametrize("summary, possible", [
    ("Можливе відключення (група 3.1)", True), ("Possible outage", True), ("Ймовірне відключення", True),
    ("Сіра зона", True), ("Відключення (група 3.1)", False), ("Sandton WEST (Stage 2)", False),
    ("Eskom Direct: Stage 6", False), ("Greyton (Stage 2)", False), ("Grey zone", True), ("Сіра зона", True),
])
def test_default_possible_pattern(summary, possible):
    import re

    assert bool(re.search(SCHEDULE_POSSIBLE, summary)) is possible


# --- windows, matching -----------------------------------------------------------------------

W1 = Window(utc("2025-10-25T15:00"), utc("2025-10-25T19:30"), False, "Відключення")
P1 = Window(utc("2025-10-25T19:00"), utc("2025-10-25T21:00"), True, "Можливе")


def test_window_at_prefers_a_definite_window():
    assert schedule.window_at([W1, P1], utc("2025-10-25T19:10")) is W1
    assert schedule.window_at([W1, P1], utc("2025-10-25T19:30")) is P1  # a window's end is outside it
    assert schedule.window_at([W1, P1], utc("2025-10-25T21:00")) is None


@pytest.mark.parametrize("start, end, window, started, ended", [
    # 15:10 is 10 min after 15:00; back at 17:00, 150 min before 19:30
    ("2025-10-25T15:10", "2025-10-25T17:00", W1, 10, -150),
    # 14:50 is 10 min early; back at 20:00, 30 min after 19:30 (the definite window wins over P1)
    ("2025-10-25T14:50", "2025-10-25T20:00", W1, -10, 30),
    ("2025-10-25T19:40", None, P1, 40, None),  # still off: only its start is measured
    ("2025-10-25T21:05", "2025-10-25T21:30", None, None, None),  # in no window
])
def test_match_outage(start, end, window, started, ended):
    match = schedule.match_outage([W1, P1], utc(start), utc(end) if end else None)
    assert (match.window, match.started, match.ended, match.scheduled) == (window, started, ended, window is not None)


def readings(*runs):
    """(minute, value) readings from ("HH:MM", "HH:MM", value) runs on 2025-10-25 (UTC)."""
    out = []
    for first, last, value in runs:
        minute, end = utc(f"2025-10-25T{first}"), utc(f"2025-10-25T{last}")
        while minute < end:
            out.append((minute, value))
            minute += dt.timedelta(minutes=1)
    return out


def test_period_stats_known_answers():
    # The hour 19:00-20:00 UTC, definite window W1 until 19:30, possible P1 from 19:00.
    # Readings: 19:00-19:19 none (unknown), 19:20-19:39 ON (20), 19:40-19:59 OFF (20).
    #   scheduled       = 19:00..19:30 in W1                       = 30
    #   on_scheduled    = ON readings 19:20..19:29 inside W1       = 10
    #   off_scheduled   = OFF readings inside W1                   = 0
    #   off_unscheduled = OFF readings outside W1 and P1: P1 holds 19:40-19:59, so 0
    #   the outage at 19:40 (previous ON) matches P1 (possible), 40 min after 19:00, still off
    hour = readings(("19:20", "19:40", 1), ("19:40", "20:00", 0))
    stats = schedule.period_stats(hour, utc("2025-10-25T19:00"), utc("2025-10-25T20:00"), NOW, [W1, P1],
                                  previous=None, runs=[(utc("2025-10-25T19:40"), utc("2025-10-25T19:59"))],
                                  open_runs={(utc("2025-10-25T19:40"), utc("2025-10-25T19:59"))})
    assert {k: stats[k] for k in ("scheduled", "on_scheduled", "off_scheduled", "off_unscheduled")} == {
        "scheduled": 30, "on_scheduled": 10, "off_scheduled": 0, "off_unscheduled": 0}
    assert stats["schedule"] == [W1.pair()] and stats["schedule_possible"] == [P1.pair()]
    assert stats["outage_schedule"] == [{"start": "2025-10-25T19:40:00+00:00", "scheduled": True,
                                         "window": P1.pair(), "possible": True, "started": 40}]
    # without the possible window the same 20 OFF readings are unscheduled, the outage too
    stats = schedule.period_stats(hour, utc("2025-10-25T19:00"), utc("2025-10-25T20:00"), NOW, [W1])
    assert (stats["off_unscheduled"], stats["outage_schedule"]) == (
        20, [{"start": "2025-10-25T19:40:00+00:00", "end": "2025-10-25T19:41:00+00:00", "scheduled": False}])


def test_scheduled_counts_only_the_minutes_so_far():
    # an hour under way at 15:29: the window's minutes 15:00..15:29 are 30
    stats = schedule.period_stats([], utc("2025-10-25T15:00"), utc("2025-10-25T16:00"), utc("2025-10-25T15:29:40"),
                                  [W1])
    assert stats["scheduled"] == 30


# --- fetching --------------------------------------------------------------------------------

class FeedServer:
    """An HTTP feed on 127.0.0.1: `mode` says what the next request gets."""

    def __init__(self):
        self.mode, self.requests = "ok", []
        self.release = threading.Event()  # a "slow" request waits for it: longer than any timeout
        self.body = YASNO.read_bytes()
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                owner.requests.append(dict(self.headers))
                mode = owner.mode
                if mode == "slow":
                    owner.release.wait()
                    mode = "ok"
                if mode == "ok" and self.headers.get("If-None-Match") == '"v1"':
                    self.send_response(304)
                    self.send_header("ETag", '"v1"')
                    self.end_headers()
                    return
                status, kind, body = {
                    "ok": (200, "text/calendar; charset=utf-8", owner.body),
                    "404": (404, "text/plain", b"not found"),
                    "html": (200, "text/html", b"<!DOCTYPE html><html><body>Just a moment...</body></html>"),
                }[mode]
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                if status == 200 and mode == "ok":
                    self.send_header("ETag", '"v1"')
                    self.send_header("Last-Modified", "Fri, 24 Oct 2025 12:00:00 GMT")
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    pass  # the client gave up (the timeout)

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.server.server_port}/ics/group-3.1/private-token-abc123.ics"

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def feed():
    server = FeedServer()
    yield server
    server.close()


@pytest.fixture
def feed_config(tmp_path, feed):
    return {"schedule_ics": (feed.url,), "schedule_possible": SCHEDULE_POSSIBLE, "timezone": "Europe/Kyiv",
            "buffer_dir": tmp_path / "buffer", "schedule_cache": None}


DAY = (utc("2025-10-25T00:00"), utc("2025-10-26T00:00"))
T0 = utc("2025-10-25T10:00")


def outcomes(results):
    return [(result.outcome, result.error) for result in results]


def test_fetch_200_then_at_most_hourly_then_304(feed, feed_config):
    assert outcomes(schedule.refresh(feed_config, T0)) == [("updated", None)]
    assert len(schedule.windows(feed_config, *DAY)) == 2  # 15:00-19:30 and the DST one from 23:00
    # within the hour: not asked again
    assert outcomes(schedule.refresh(feed_config, T0 + dt.timedelta(minutes=59))) == [("fresh", None)]
    assert len(feed.requests) == 1
    # an hour on: a conditional request, answered 304, keeps the copy
    assert outcomes(schedule.refresh(feed_config, T0 + dt.timedelta(hours=1))) == [("not modified", None)]
    assert feed.requests[1]["If-None-Match"] == '"v1"'
    assert feed.requests[1]["If-Modified-Since"] == "Fri, 24 Oct 2025 12:00:00 GMT"
    assert len(schedule.windows(feed_config, *DAY)) == 2
    assert list(schedule.status_lines(feed_config, T0)) == []  # nothing to say of a good feed


@pytest.mark.parametrize("mode, error", [("404", "HTTP 404"), ("html", "an HTML page"), ("slow", "timed out")])
def test_a_failing_feed_keeps_the_last_good_copy_and_says_so(feed, feed_config, mode, error, caplog):
    schedule.refresh(feed_config, T0)
    feed.mode = mode
    later = T0 + dt.timedelta(hours=2)
    (result,) = schedule.refresh(feed_config, later, timeout=0.5)  # "slow" never answers before release
    feed.release.set()
    assert (result.outcome, result.error.startswith(error), result.good_at) == ("failed", True, T0)
    assert len(schedule.windows(feed_config, *DAY)) == 2  # the last good copy
    (line,) = schedule.status_lines(feed_config, later + dt.timedelta(minutes=5))
    assert line.startswith(f"schedule http://127.0.0.1:{feed.server.server_port}/…: failed ({error}")
    assert line.endswith("the last good copy, 2 h old, is used")
    assert "private-token" not in line and "private-token" not in caplog.text  # a feed's path may be a secret
    # the next good answer clears it
    feed.mode = "ok"
    feed.body = ESKOM.read_bytes()  # a new version of the feed, with no ETag match
    feed.requests.clear()
    assert outcomes(schedule.refresh(feed_config, later + dt.timedelta(hours=1))) in (
        [("not modified", None)], [("updated", None)])
    assert list(schedule.status_lines(feed_config, later)) == []


def test_a_feed_that_never_worked_gives_no_windows_and_never_raises(feed, feed_config):
    feed.mode = "404"
    assert schedule.windows(feed_config, *DAY, fetch=True, now=T0) == []
    assert not schedule.Snapshot(feed_config).complete  # the aggregator then leaves the statistics out
    (line,) = schedule.status_lines(feed_config, T0)
    assert "no good copy yet" in line


def test_a_file_source_is_read_directly_and_its_last_good_copy_kept(tmp_path):
    source = tmp_path / "group.ics"
    source.write_bytes(ESKOM.read_bytes())
    config = {"schedule_ics": (str(source),), "buffer_dir": tmp_path / "buffer", "timezone": None}
    window = (utc("2025-10-20T00:00"), utc("2025-10-21T00:00"))
    assert spans(schedule.windows(config, *window, fetch=True, now=T0)) == [
        ("2025-10-20T16:00:00+00:00", "2025-10-20T18:30:00+00:00", False)]
    source.write_text("<html>oops</html>")
    assert outcomes(schedule.refresh(config, T0)) == [("failed", "an HTML page (no BEGIN:VCALENDAR at its start)")]
    assert len(schedule.windows(config, *window)) == 1
    assert schedule.windows({"schedule_ics": None}, *window) == []


@pytest.mark.parametrize("environ, expected", [
    ({"BLACKOUT_SCHEDULE_ICS": "https://a.example/x.ics  webcal://b.example/y.ics"},
     ("https://a.example/x.ics", "https://b.example/y.ics")),
])
def test_config_keys(environ, expected):
    config = load_config(None, ("schedule_ics", "schedule_possible"), environ={**environ, "BLACKOUT_CONFIG": "/dev/null"})
    assert config["schedule_ics"] == expected and config["schedule_possible"] == SCHEDULE_POSSIBLE


@pytest.mark.parametrize("name, value, says", [
    ("BLACKOUT_SCHEDULE_POSSIBLE", "(можлив", "is not a regular expression"),
    ("BLACKOUT_SCHEDULE_ICS", "ftp://x.example/a.ics", "is not an http://, https:// or webcal:// URL"),
])
def test_bad_config_is_a_config_error(name, value, says):
    with pytest.raises(ConfigError, match=says):
        load_config(None, ("schedule_ics", "schedule_possible"), environ={name: value, "BLACKOUT_CONFIG": "/dev/null"})


# --- the aggregator: known answers, stored windows -------------------------------------------------

# The scenario, 2025-10-25 in UTC (Europe/Kyiv is +03:00 that day; its day is 21:00Z the 24th
# to 21:00Z the 25th). The definite window (merged) is 15:00-19:30Z.
SCENARIO = (("14:00", "15:10", 1), ("15:10", "17:00", 0), ("17:00", "18:00", 1), ("18:00", "18:20", 0),
            ("18:20", "19:00", 1), ("19:20", "19:40", 1), ("19:40", "20:00", 0))
# hour -> (scheduled, off_scheduled, off_unscheduled, on_scheduled), by hand:
KNOWN_HOURS = {
    "14": (0, 0, 0, 0),  # before the window: 60 ON
    "15": (60, 50, 0, 10),  # 15:00-15:09 ON (10), 15:10-15:59 OFF (50), all inside
    "16": (60, 60, 0, 0),
    "17": (60, 0, 0, 60),
    "18": (60, 20, 0, 40),  # 18:00-18:19 OFF (20), 18:20-18:59 ON (40)
    "19": (30, 0, 20, 10),  # window to 19:30; 19:00-19:19 no reading; ON 19:20-19:29 inside (10); OFF 19:40-19:59 outside (20)
}
# The day: scheduled 4.5 h = 270; off_scheduled 50+60+20 = 130; on_scheduled 10+60+40+10 = 120;
# off_unscheduled 20. Check: 270 = 130 + 120 + 20 unknown minutes (19:00-19:19) inside the window.
KNOWN_DAY = (270, 130, 20, 120)
# Outages: 15:10 (10 min late; back 17:00, 150 min before 19:30), 18:00 (180 min late; back
# 18:20, 70 min early), 19:40 (outside the window, still off).
KNOWN_OUTAGES = [
    {"start": "2025-10-25T15:10:00+00:00", "end": "2025-10-25T17:00:00+00:00", "scheduled": True,
     "window": ["2025-10-25T15:00:00+00:00", "2025-10-25T19:30:00+00:00"], "possible": False,
     "started": 10, "ended": -150},
    {"start": "2025-10-25T18:00:00+00:00", "end": "2025-10-25T18:20:00+00:00", "scheduled": True,
     "window": ["2025-10-25T15:00:00+00:00", "2025-10-25T19:30:00+00:00"], "possible": False,
     "started": 180, "ended": -70},
    {"start": "2025-10-25T19:40:00+00:00", "scheduled": False},
]


def store_readings(client, prefix, runs, sensor="4"):
    """Minute items as the flush writes them, with their hours' markers and the sensor's registry."""
    table = dynamo.table_names(prefix)["minutes"]
    items, hours = [], set()
    for minute, value in readings(*runs):
        reading = filebuffer.Reading(DEVICE, sensor, minute + dt.timedelta(seconds=3), {"reading": value})
        items.append((table, dynamo.minute_item(reading)))
        hours.add(aggregate.hour_of(minute))
    dynamo.put_all(client, items)
    dynamo.put_all(client, [(table, dynamo.marker_item(DEVICE, sensor, hour, dynamo.utc_now())) for hour in hours])
    pk, sk = dynamo.registry_key(DEVICE, sensor)
    client.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": DEVICE},
                                           "sensor": {"S": sensor}})


def items_of(client, prefix, kind, sensor="4"):
    return {dynamo.period_start(item["pk"], item["sk"]): item
            for item in map(dynamo.plain, client.scan(TableName=dynamo.table_names(prefix)[kind])["Items"])
            if f"#sensor#{sensor}#date#" in item["pk"]}


def four(item):
    return tuple(item[name] for name in ("scheduled", "off_scheduled", "off_unscheduled", "on_scheduled"))


def test_aggregator_known_answers_and_stored_windows(dynamodb, config, tmp_path):
    feed = tmp_path / "group.ics"
    feed.write_bytes(YASNO.read_bytes())
    config.update(timezone="Europe/Kyiv", schedule_ics=(str(feed),), schedule_possible=SCHEDULE_POSSIBLE)
    store_readings(dynamodb, config["table_prefix"], SCENARIO)
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=NOW)
    hours = items_of(dynamodb, config["table_prefix"], "hours")
    assert {f"{hour:%H}": four(item) for hour, item in hours.items()} == KNOWN_HOURS
    (day,) = items_of(dynamodb, config["table_prefix"], "days").values()
    assert four(day) == KNOWN_DAY
    assert day["outage_schedule"] == KNOWN_OUTAGES and day["outages"] == 3
    assert day["schedule"] == [["2025-10-25T15:00:00+00:00", "2025-10-25T19:30:00+00:00"]]
    # the Parquet mirror carries them too
    import mirror
    import pyarrow.parquet as pq

    config["parquet_dir"] = tmp_path / "parquet"
    mirror.export(config, DEVICE, "4", [dt.date(2025, 10, 25)], client=dynamodb)
    table = pq.read_table(config["parquet_dir"] / mirror.partition_path("hours", DEVICE, "4", dt.date(2025, 10, 25)))
    assert list(zip(*(table.column(name).to_pylist() for name in
                      ("scheduled", "off_scheduled", "off_unscheduled", "on_scheduled")))) == list(KNOWN_HOURS.values())
    # The schedule changes afterwards (here: the group's feed now says nothing that day). A
    # rebuild of the day recomputes it from its minutes with the windows it stored: the same answer.
    feed.write_bytes(ESKOM.read_bytes())
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=NOW, rebuild=(dt.date(2025, 10, 25), dt.date(2025, 10, 25)))
    assert items_of(dynamodb, config["table_prefix"], "hours") == hours
    assert items_of(dynamodb, config["table_prefix"], "days") == {day_start: day for day_start in
                                                                  items_of(dynamodb, config["table_prefix"], "days")}
    (again,) = items_of(dynamodb, config["table_prefix"], "days").values()
    assert again == day


def test_aggregator_without_a_schedule_adds_nothing_and_a_dead_feed_stops_nothing(dynamodb, config, tmp_path):
    config.update(timezone="Europe/Kyiv", schedule_ics=(f"http://127.0.0.1:{free_port()}/nothing-listens.ics",),
                  schedule_possible=SCHEDULE_POSSIBLE)
    store_readings(dynamodb, config["table_prefix"], SCENARIO[:2])
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=NOW)
    hours = items_of(dynamodb, config["table_prefix"], "hours")
    assert len(hours) == 3 and not any("scheduled" in item or "schedule" in item for item in hours.values())


# --- the commands, as a user runs them -------------------------------------------------------------

def test_check_lists_the_next_windows(tmp_path):
    env = {"BLACKOUT_CONFIG": str(tmp_path / "config.toml"), "BLACKOUT_BUFFER_DIR": str(tmp_path / "buffer"),
           "BLACKOUT_LOG_DIR": str(tmp_path / "logs"), "PYTHONDONTWRITEBYTECODE": "1"}
    (tmp_path / "config.toml").write_text(f'timezone = "Europe/Kyiv"\nschedule_ics = ["{YASNO}", "{ALLDAY}"]\n')
    result = run_script("schedule.py", "check", "--from", "2025-10-25T12:00", "--days", "2", env=env)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[:2] == ["tests/fixtures/yasno_kyiv_group_3_1.ics: file",  # relative to the project
                         "tests/fixtures/home_assistant_allday_floating.ics: file"]
    assert lines[2] == "windows from 2025-10-25 15:00 EEST for 2 days (Europe/Kyiv): 4"
    assert lines[3].split() == "Sat 2025-10-25 18:00–22:30 definite Відключення (група 3.1)".split()
    assert lines[4].split() == "Sun 2025-10-26 02:00–05:00 definite Відключення (група 3.1)".split()
    assert "possible" in lines[5] and lines[6].split()[:4] == ["Sun", "2025-10-26", "23:00–Mon", "2025-10-27"]
    bad = run_script("schedule.py", "check", "--days", "0", env=env)
    assert (bad.returncode, bad.stderr) == (2, "Error: --days 0 must be from 1 to 366\n")
    env["BLACKOUT_SCHEDULE_POSSIBLE"] = "(unclosed"
    bad = run_script("schedule.py", "check", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: BLACKOUT_SCHEDULE_POSSIBLE '(unclosed' is not a "
                                                         "regular expression") and bad.stderr.count("\n") == 1


def test_report_known_answers(server_env, server_client, tmp_path):
    env = dict(server_env, BLACKOUT_TIMEZONE="Europe/Kyiv", BLACKOUT_SCHEDULE_ICS=str(YASNO), BLACKOUT_DEVICE=DEVICE)
    store_readings(server_client, env["BLACKOUT_TABLE_PREFIX"], SCENARIO)
    result = run_script("aggregate.py", env=env)
    assert result.returncode == 0, result.stderr
    result = run_script("schedule.py", "report", "--from", "2025-10-24", "--to", "2025-10-25", "--csv", env=env)
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    assert [row["date"] for row in rows] == ["2025-10-24", "2025-10-25", "total"]
    assert rows[0]["note"] == "no readings"
    # 270 min = 4.5 h; 130 min = 2.17 h; 120 = 2.0 h; 20 = 0.33 h; late: 10 and 180 min, median 95;
    # back early: 150 and 70 min, median 110
    expected = {"scheduled_h": "4.5", "off_scheduled_h": "2.17", "on_scheduled_h": "2.0", "off_unscheduled_h": "0.33",
                "outages": "3", "outages_scheduled": "2", "started_late": "2", "started_late_median_min": "95.0",
                "started_early": "0", "started_early_median_min": "", "ended_early": "2",
                "ended_early_median_min": "110.0", "note": ""}
    for row in rows[1:]:
        assert {name: row[name] for name in expected} == expected
    text = run_script("schedule.py", "report", "--from", "2025-10-25", "--to", "2025-10-25", env=env)
    assert text.returncode == 0, text.stderr
    (day,) = [line for line in text.stdout.splitlines() if line.startswith("2025-10-25")]
    assert day.split() == ["2025-10-25", "4.50", "h", "2.17", "h", "2.00", "h", "0.33", "h", "3", "2", "2", "(95", "min)",
                           "0", "2", "(110", "min)"]
    # a feed that fails never stops the aggregation, and `status` says it
    env["BLACKOUT_SCHEDULE_ICS"] = str(tmp_path / "gone.ics")
    store_readings(server_client, env["BLACKOUT_TABLE_PREFIX"], (("20:00", "20:05", 1),))
    result = run_script("aggregate.py", env=env)
    assert result.returncode == 0 and "No such file or directory" in result.stderr, result.stderr
    status = run_script("dynamo.py", "status", env=env)
    assert status.returncode == 0, status.stderr
    assert (f"schedule {tmp_path / 'gone.ics'}: failed (No such file or directory) at " in status.stdout
            and "no good copy yet" in status.stdout), status.stdout
    bad = run_script("schedule.py", "report", "--from", "2025-10-25", "--to", "2025-10-01", env=env)
    assert (bad.returncode, bad.stderr) == (2, "Error: --to 2025-10-01 is before --from 2025-10-25\n")
    bad = run_script("schedule.py", "report", "--from", "someday", "--to", "2025-10-01", env=env)
    assert bad.returncode == 2 and bad.stderr.startswith("Error: --from 'someday' is not a date")


def test_an_outage_starting_before_its_window_in_an_earlier_hour_finds_it(dynamodb, config, tmp_path):
    config.update(timezone="Europe/Kyiv", schedule_ics=(str(YASNO),), schedule_possible=SCHEDULE_POSSIBLE)
    # ON 14:00-14:49, OFF 14:50-15:19, ON 15:20-15:29; the window begins at 15:00
    store_readings(dynamodb, config["table_prefix"], (("14:00", "14:50", 1), ("14:50", "15:20", 0), ("15:20", "15:30", 1)))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=NOW)
    hours = {f"{hour:%H}": item for hour, item in items_of(dynamodb, config["table_prefix"], "hours").items()}
    # hour 14: no scheduled minute; its OFF readings 14:50-14:59 (10) are outside the window.
    # hour 15: 60 scheduled (the hour is over), OFF 15:00-15:19 (20) and ON 15:20-15:29 (10) inside.
    assert (four(hours["14"]), four(hours["15"])) == ((0, 0, 10, 0), (60, 20, 0, 10))
    # the outage, counted in hour 14: 10 min before 15:00, back at 15:20, 250 min before 19:30
    assert hours["14"]["outage_schedule"] == [{
        "start": "2025-10-25T14:50:00+00:00", "end": "2025-10-25T15:20:00+00:00", "scheduled": True,
        "window": ["2025-10-25T15:00:00+00:00", "2025-10-25T19:30:00+00:00"], "possible": False,
        "started": -10, "ended": -250}]


def test_items_with_windows_are_strictly_valid(strict_tables, config, monkeypatch, tmp_path):
    """The aggregator's items with lists and maps (schedule, outage_schedule) pass DynamoDB's
    documented rules (tests/strict_dynamodb.py), and --schedule-ics is a flag."""
    from tests.test_conformance import START, buffer_readings

    feed = tmp_path / "window.ics"
    feed.write_text("BEGIN:VCALENDAR\r\nVERSION:2.0\r\nPRODID:-//test//EN\r\nBEGIN:VEVENT\r\nUID:1@test\r\n"
                    f"DTSTAMP:20250601T000000Z\r\nDTSTART:{START:%Y%m%dT%H%M%SZ}\r\n"
                    f"DTEND:{START + dt.timedelta(minutes=90):%Y%m%dT%H%M%SZ}\r\nSUMMARY:Stage 2\r\n"
                    "END:VEVENT\r\nEND:VCALENDAR\r\n")
    buffer_readings(config, count=130)  # ON and OFF alternately, from START
    dynamo.flush(config)
    monkeypatch.setattr(aggregate, "utc_now", lambda: START + dt.timedelta(hours=4))
    code = aggregate.main(["--device", config["device"], "--table-prefix", config["table_prefix"],
                           "--buffer-dir", str(config["buffer_dir"]), "--log-dir", str(config["log_dir"]),
                           "--schedule-ics", str(feed)])
    assert code == 0 and strict_tables.violations == []
    import boto3

    hours = items_of(boto3.client("dynamodb"), config["table_prefix"], "hours")  # a Scan, for the test only
    first = hours[START]
    # 60 scheduled minutes; readings alternate OFF (even minutes) and ON, one minute twice (ON)
    assert (first["scheduled"], first["off_scheduled"] + first["on_scheduled"]) == (60, 60)
    assert len(first["outage_schedule"]) == first["outages"] > 0


def test_a_flapping_relay_keeps_its_items_small():
    # ON/OFF every minute for 4 hours inside W1 (15:00-19:00): 120 outages, 48 recorded
    flapping = [(utc("2025-10-25T15:00") + dt.timedelta(minutes=n), n % 2) for n in range(240)]
    stats = schedule.period_stats(flapping, utc("2025-10-25T15:00"), utc("2025-10-25T19:00"), NOW, [W1], previous=1)
    assert (len(stats["outage_schedule"]), stats["outage_schedule_more"]) == (schedule.MAX_OUTAGE_RECORDS, 120 - 48)
    day = schedule.day_from_parts([(utc("2025-10-25T15:00"), utc("2025-10-25T19:00"), stats)] * 2,
                                  utc("2025-10-25T00:00"), utc("2025-10-26T00:00"), NOW, [W1])
    assert (len(day["outage_schedule"]), day["outage_schedule_more"]) == (48, 2 * 120 - 48)


@pytest.mark.parametrize("args, says", [
    ([], "the following arguments are required: COMMAND"),
    (["report", "--from", "2025-10-25"], "the following arguments are required: --to"),
    (["report", "--from", "2025-10-25", "--to", "2025-10-25", "--sensor", "bme"], "--sensor 'bme' is not a pin number"),
    (["check", "--days", "many"], "argument --days: invalid int value: 'many'"),
    (["check", "--schedule-ics", "gopher://x.example/a.ics"], "is not an http://, https:// or webcal:// URL"),
])
def test_bad_flags_are_one_line_and_exit_2(tmp_path, args, says):
    env = {"BLACKOUT_CONFIG": str(tmp_path / "config.toml"), "BLACKOUT_SCHEDULE_ICS": str(YASNO),
           "BLACKOUT_DEVICE": DEVICE, "PYTHONDONTWRITEBYTECODE": "1"}
    (tmp_path / "config.toml").write_text("")
    result = run_script("schedule.py", *args, env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith("Error: ") and says in result.stderr and result.stderr.count("\n") == 1, result.stderr


def test_check_says_when_a_feed_fails(tmp_path, feed):
    env = {"BLACKOUT_CONFIG": str(tmp_path / "config.toml"), "BLACKOUT_BUFFER_DIR": str(tmp_path / "buffer"),
           "BLACKOUT_LOG_DIR": str(tmp_path / "logs"), "PYTHONDONTWRITEBYTECODE": "1",
           "BLACKOUT_SCHEDULE_ICS": f"{feed.url} {ESKOM}"}
    (tmp_path / "config.toml").write_text("")
    feed.mode = "404"
    result = run_script("schedule.py", "check", "--from", "2025-10-20T00:00", "--days", "1", env=env)
    host = f"http://127.0.0.1:{feed.server.server_port}/…"
    assert result.returncode == 1
    assert result.stdout.splitlines()[:4] == [
        f"{host}: FAILED (HTTP 404); no copy kept", "tests/fixtures/eskom_sandton_west.ics: file",
        "windows from 2025-10-20 00:00 UTC for 1 days (UTC): 1",
        "  Mon 2025-10-20 16:00–18:30  definite  Sandton WEST (Stage 2)"]
    assert result.stderr == f"Error: no good copy of {host}: check its URL or path\n"
    feed.mode = "ok"
    result = run_script("schedule.py", "check", "--from", "2025-10-20T00:00", "--days", "1", env=env)
    assert result.returncode == 0 and result.stdout.startswith(f"{host}: updated\n"), result.stderr


def test_a_day_agrees_with_its_hours_when_the_schedule_changes_during_it(dynamodb, config, tmp_path, monkeypatch):
    feed = tmp_path / "group.ics"
    feed.write_bytes(YASNO.read_bytes())
    config.update(timezone="Europe/Kyiv", schedule_ics=(str(feed),), schedule_possible=SCHEDULE_POSSIBLE)
    store_readings(dynamodb, config["table_prefix"], SCENARIO)
    during = utc("2025-10-25T20:30")  # the Kyiv day (to 21:00Z) still under way
    monkeypatch.setattr(aggregate, "utc_now", lambda: during)  # the items' ts
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=during)
    # the feed drops the day's windows; the power comes back at 20:00
    feed.write_bytes(ESKOM.read_bytes())
    store_readings(dynamodb, config["table_prefix"], (("20:00", "20:30", 1),))
    monkeypatch.setattr(aggregate, "utc_now", lambda: NOW)
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=NOW)
    hours = {f"{hour:%H}": four(item) for hour, item in items_of(dynamodb, config["table_prefix"], "hours").items()}
    # the hours over before the change keep their windows; hour 20 has none now
    assert hours == {**KNOWN_HOURS, "20": (0, 0, 0, 0)}
    (day,) = items_of(dynamodb, config["table_prefix"], "days").values()
    # the day's own windows are the new (empty) ones, but its scheduled minutes are its hours':
    # 60+60+60+60+30 = 270, so that off_scheduled (130) + on_scheduled (120) + 20 unknown add up
    assert four(day) == KNOWN_DAY and day["schedule"] == []
