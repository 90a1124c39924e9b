"""The outage schedule in the messages: the Pi's OFF and back texts, the watchdog's silence.

Known texts for each case in Europe/Kyiv: an OFF inside a scheduled window, outside every
window, in a possible window; back before, after and at the scheduled end; windows published
hour by hour; the days the clocks change. The schedule itself (schedule.windows) is played by a
fake: its parsing and fetching are tested with schedule.py.
"""

import datetime as dt
import json
import logging

import pytest

import messages
import notify
import schedule
import watchdog
from filebuffer import Reading
from messages import iso, message_text, webhook_document
from schedule import Window

KYIV = "Europe/Kyiv"
ZONE = messages.time_zone(KYIV)
UTC = dt.timezone.utc
WHERE = "device alex_rpi, pin 4"


def local(year, month, day, hour, minute, fold=0):
    """A local Kyiv time as aware UTC (fold=1: the second 03:xx of the autumn change)."""
    return dt.datetime(year, month, day, hour, minute, tzinfo=ZONE, fold=fold).astimezone(UTC)


def window(start, end, possible=False, summary="Outage, group 3.1"):
    return Window(start, end, possible, summary)


EVENING = window(local(2026, 12, 5, 18, 0), local(2026, 12, 5, 22, 0))


class FakeSchedule:
    """schedule.known_windows: the given windows overlapping [start, end); every call recorded."""

    def __init__(self, windows=(), error=None):
        self.windows, self.error, self.calls = list(windows), error, []

    def __call__(self, config, start, end, *, fetch=False, now=None):
        self.calls.append({"start": start, "end": end, "fetch": fetch, "now": now})
        if self.error:
            raise self.error
        return [w for w in self.windows if w.start < end and w.end > start]


@pytest.fixture
def fake_schedule(monkeypatch):
    def install(windows=(), error=None):
        fake = FakeSchedule(windows, error)
        monkeypatch.setattr(schedule, "known_windows", fake)
        return fake
    return install


class Clock:
    def __init__(self, now):
        self.now = now

    def __call__(self):
        return self.now


@pytest.fixture
def cfg(config, webhook):
    return {**config, "pin": 4, "notify_after": 1, "telegram_token": None, "telegram_chat_id": None,
            "webhook_url": f"{webhook.url}/hook", "sns_topic_arn": None, "timezone": KYIV,
            "schedule_ics": ["/etc/blackout/group-3.1.ics"], "schedule_possible": None}


def run_minutes(cfg, readings):
    """Minute jobs, one per (local time, pin value): the reading, then the queue sent."""
    for ts, value in readings:
        notifier = notify.Notifier(cfg, clock=Clock(ts + dt.timedelta(seconds=20)))
        notifier.observe(Reading(cfg["device"], "4", ts + dt.timedelta(seconds=3), {"reading": value}))
        notifier.finish()


def delivered(webhook):
    return [request.body for request in webhook.delivered()]


def power_message(state, at, began=None, **schedule_fields):
    """A queued power message as notify.advance makes it (the window as Notifier adds it)."""
    message = {"kind": "power", "id": "m1", "device": "alex_rpi", "sensor": "4", "state": state, "at": iso(at),
               "previous_state": "on" if state == "off" else "off", "queued_at": iso(at),
               "duration_minutes": None if began is None else round((at - began).total_seconds() / 60),
               "previous_since": None if began is None else iso(began)}
    return {**message, **schedule_fields}


# --- the Pi's messages through the queue ------------------------------------------------------

OFF_AT, BACK_EARLY = local(2026, 12, 5, 18, 2), local(2026, 12, 5, 20, 10)


def test_off_in_the_window_then_back_early(cfg, webhook, fake_schedule):
    fake = fake_schedule([EVENING])
    run_minutes(cfg, [(local(2026, 12, 5, 18, 1), 1), (OFF_AT, 0), (BACK_EARLY, 1)])
    off, back = delivered(webhook)
    assert off["text"] == f"Power OFF at 18:02 EET (scheduled 18:00–22:00 EET, expected back 22:00; {WHERE})"
    assert back["text"] == f"Power back at 20:10 EET after 2 h 8 min, 1 h 50 min before the scheduled end ({WHERE})"
    # the webhook's JSON carries the window as fields, in UTC as every stored time
    expected = {"start": "2026-12-05T16:00:00.000000+00:00", "end": "2026-12-05T20:00:00.000000+00:00",
                "possible": False}
    assert off["schedule"] == expected and back["schedule"] == expected
    # the Pi reads only its local cache (its internet is likely down with the power), only for a message
    assert len(fake.calls) == 2 and not any(call["fetch"] for call in fake.calls)


def test_off_outside_every_window(cfg, webhook, fake_schedule):
    fake_schedule([EVENING])
    run_minutes(cfg, [(local(2026, 12, 5, 12, 0), 1), (local(2026, 12, 5, 12, 1), 0), (local(2026, 12, 5, 13, 0), 1)])
    off, back = delivered(webhook)
    assert off["text"] == f"Power OFF at 12:01 EET (not in the schedule; {WHERE})"
    assert back["text"] == f"Power back at 13:00 EET after 59 min ({WHERE})"
    assert off["schedule"] is None and back["schedule"] is None


def test_without_a_schedule_the_texts_and_documents_are_unchanged(cfg, webhook, fake_schedule):
    fake = fake_schedule([EVENING])
    run_minutes({**cfg, "schedule_ics": None}, [(local(2026, 12, 5, 18, 1), 1), (OFF_AT, 0)])
    (off,) = delivered(webhook)
    assert off["text"] == f"Power OFF at 18:02 EET ({WHERE})"
    assert "schedule" not in off and fake.calls == []


def test_a_broken_schedule_never_costs_the_message(cfg, webhook, fake_schedule, caplog):
    fake_schedule(error=OSError("cache unreadable"))
    with caplog.at_level(logging.WARNING):
        run_minutes(cfg, [(local(2026, 12, 5, 18, 1), 1), (OFF_AT, 0)])
    (off,) = delivered(webhook)
    assert off["text"] == f"Power OFF at 18:02 EET ({WHERE})" and "schedule" not in off
    assert "cache unreadable" in caplog.text


def test_a_schedule_never_fetched_says_nothing_rather_than_not_in_the_schedule(cfg, webhook, tmp_path, caplog):
    """The real schedule module with an empty cache (a Pi restarted while its internet is down):
    no copy of the feed is not 'no window'."""
    cfg = {**cfg, "schedule_ics": ["https://example.invalid/group-3.1.ics"], "schedule_cache": str(tmp_path / "cache")}
    with caplog.at_level(logging.WARNING):
        run_minutes(cfg, [(local(2026, 12, 5, 18, 1), 1), (OFF_AT, 0)])
    (off,) = delivered(webhook)
    assert off["text"] == f"Power OFF at 18:02 EET ({WHERE})" and "schedule" not in off
    assert "no readable copy" in caplog.text


def test_the_window_is_kept_from_queueing_to_every_retry(cfg, webhook, fake_schedule):
    """The text is the same on every attempt, whatever the schedule says by then."""
    fake = fake_schedule([EVENING])
    webhook.down = True
    run_minutes(cfg, [(local(2026, 12, 5, 18, 1), 1), (OFF_AT, 0)])
    assert webhook.delivered() == [] and webhook.dropped == 1
    fake.windows = []  # the feed changed since
    webhook.down = False
    notify.Notifier(cfg, clock=Clock(OFF_AT + dt.timedelta(minutes=10))).finish()
    (off,) = delivered(webhook)
    assert off["text"].startswith("Power OFF at 18:02 EET (scheduled 18:00–22:00 EET, expected back 22:00; ")
    assert off["text"].endswith(" — sent 18:12 EET, the link was down")


def test_a_damaged_window_in_the_queue_is_dropped_not_the_message(cfg, webhook, fake_schedule):
    fake_schedule([EVENING])
    webhook.down = True
    run_minutes(cfg, [(local(2026, 12, 5, 18, 1), 1), (OFF_AT, 0)])
    (path,) = (cfg["buffer_dir"] / "notify" / "queue").glob("*.json")
    document = json.loads(path.read_text())
    document["schedule"] = {"start": "yesterday"}
    path.write_text(json.dumps(document))
    webhook.down = False
    notify.Notifier(cfg, clock=Clock(OFF_AT + dt.timedelta(minutes=1))).finish()
    (off,) = delivered(webhook)
    assert off["text"] == f"Power OFF at 18:02 EET ({WHERE})"


# --- the texts, case by case ------------------------------------------------------------------

@pytest.mark.parametrize("windows, off_at, expected", [
    ([EVENING], OFF_AT, "scheduled 18:00–22:00 EET, expected back 22:00; "),
    ([window(EVENING.start, EVENING.end, possible=True)], OFF_AT, "possible outage 18:00–22:00 EET, expected back 22:00; "),
    # a definite window wins over a possible one at the same time
    ([window(local(2026, 12, 5, 17, 0), local(2026, 12, 5, 23, 0), possible=True), EVENING], OFF_AT,
     "scheduled 18:00–22:00 EET, expected back 22:00; "),
    # published hour by hour (Yasno's shape): one outage 18:00-22:00
    ([window(local(2026, 12, 5, h, 0), local(2026, 12, 5, h + 1, 0)) for h in (18, 19, 20, 21)], OFF_AT,
     "scheduled 18:00–22:00 EET, expected back 22:00; "),
    # cut a little before the window: that window's; too early: not in the schedule
    ([EVENING], local(2026, 12, 5, 17, 50), "scheduled 18:00–22:00 EET, expected back 22:00; "),
    ([EVENING], local(2026, 12, 5, 17, 40), "not in the schedule; "),
    ([EVENING], local(2026, 12, 5, 22, 0), "not in the schedule; "),  # the window's end is not in it
    # a window past midnight: its end carries its date
    ([window(local(2026, 12, 5, 22, 0), local(2026, 12, 6, 2, 0))], local(2026, 12, 5, 22, 5),
     "scheduled 22:00–2026-12-06 02:00 EET, expected back 2026-12-06 02:00; "),
])
def test_off_texts(windows, off_at, expected):
    message = power_message("off", off_at, **messages.schedule_fields(windows, off_at))
    assert message_text(message, ZONE, sent_at=off_at) == f"Power OFF at {off_at.astimezone(ZONE):%H:%M} EET ({expected}{WHERE})"


@pytest.mark.parametrize("back_at, possible, expected", [
    (BACK_EARLY, False, "after 2 h 8 min, 1 h 50 min before the scheduled end"),
    (local(2026, 12, 5, 22, 30), False, "after 4 h 28 min, 30 min after the scheduled end"),
    (local(2026, 12, 5, 22, 0), False, "after 3 h 58 min, at the scheduled end"),
    (local(2026, 12, 6, 1, 15), False, "after 7 h 13 min, 3 h 15 min after the scheduled end"),
    (BACK_EARLY, True, "after 2 h 8 min, 1 h 50 min before the possible outage's end"),
])
def test_back_texts(back_at, possible, expected):
    windows = [window(EVENING.start, EVENING.end, possible)]
    message = power_message("on", back_at, began=OFF_AT, **messages.schedule_fields(windows, OFF_AT))
    assert message_text(message, ZONE, sent_at=back_at) == f"Power back at {back_at.astimezone(ZONE):%H:%M} EET {expected} ({WHERE})"


def test_a_restore_with_no_window_says_nothing_of_the_schedule():
    message = power_message("on", BACK_EARLY, began=OFF_AT, **messages.schedule_fields([], OFF_AT))
    assert message["schedule"] is None
    assert message_text(message, ZONE, sent_at=BACK_EARLY) == f"Power back at 20:10 EET after 2 h 8 min ({WHERE})"
    document = webhook_document(message, "text")
    assert document["schedule"] is None and document["duration_minutes"] == 128


@pytest.mark.parametrize("windows, off_at, expected", [
    # 25 Oct 2026: 04:00 EEST becomes 03:00 EET; a window 01:00-05:00 local lasts 5 hours
    ([window(local(2026, 10, 25, 1, 0), local(2026, 10, 25, 5, 0))], local(2026, 10, 25, 1, 2),
     "Power OFF at 01:02 EEST (scheduled 01:00 EEST–05:00 EET, expected back 05:00; "),
    # inside the repeated hour: 03:30 EET, the second time the clocks showed it
    ([window(local(2026, 10, 25, 3, 0, fold=1), local(2026, 10, 25, 6, 0))], local(2026, 10, 25, 3, 30, fold=1),
     "Power OFF at 03:30 EET (scheduled 03:00–06:00 EET, expected back 06:00; "),
    # 29 Mar 2026: 03:00 EET becomes 04:00 EEST; 02:00-06:00 local lasts 3 hours
    ([window(local(2026, 3, 29, 2, 0), local(2026, 3, 29, 6, 0))], local(2026, 3, 29, 2, 30),
     "Power OFF at 02:30 EET (scheduled 02:00 EET–06:00 EEST, expected back 06:00; "),
])
def test_days_the_clocks_change(windows, off_at, expected):
    message = power_message("off", off_at, **messages.schedule_fields(windows, off_at))
    assert message_text(message, ZONE, sent_at=off_at) == f"{expected}{WHERE})"


def test_dst_restore_counts_real_minutes():
    """Back at 04:30 EET on 25 Oct 2026 with the window ending 05:00 EET: 30 min early (not 90)."""
    windows = [window(local(2026, 10, 25, 1, 0), local(2026, 10, 25, 5, 0))]
    off_at, back_at = local(2026, 10, 25, 1, 2), local(2026, 10, 25, 4, 30)
    message = power_message("on", back_at, began=off_at, **messages.schedule_fields(windows, off_at))
    assert message_text(message, ZONE, sent_at=back_at) == (
        f"Power back at 04:30 EET after 4 h 28 min, 30 min before the scheduled end ({WHERE})")


# --- the watchdog ----------------------------------------------------------------------------------

class SilentSince:
    """watchdog.Readings of a device whose newest reading is `newest` (and already seen then)."""

    device = "alex_rpi"

    def __init__(self, newest):
        self.newest = newest

    def fresh(self):
        return None

    def latest(self):
        return self.newest

    def pins(self, since, until):
        return []


def silence(newest, now, windows):
    state = {"device": "alex_rpi", "phase": "watching", "outbox": [], "seen_ts": iso(newest), "seen_at": iso(newest)}
    asked = []

    def schedule_of_run():
        asked.append(True)
        return windows

    new, (message,) = watchdog.decide(state, SilentSince(newest), now, dt.timedelta(minutes=5), ZONE,
                                      schedule_of_run if windows is not None else None)
    assert new["phase"] == "silent" and len(asked) == (windows is not None)
    return message


@pytest.mark.parametrize("windows, newest, expected", [
    ([EVENING], local(2026, 12, 5, 18, 2), " — inside the scheduled outage 18:00–22:00 EET"),
    ([window(EVENING.start, EVENING.end, True)], local(2026, 12, 5, 18, 2), " — inside the possible outage 18:00–22:00 EET"),
    ([EVENING], local(2026, 12, 5, 17, 55), " — inside the scheduled outage 18:00–22:00 EET"),  # cut early
    ([EVENING], local(2026, 12, 5, 16, 0), ""),
    ([], local(2026, 12, 5, 18, 2), ""),
    (None, local(2026, 12, 5, 18, 2), ""),  # no schedule configured
])
def test_watchdog_silence_in_a_window(windows, newest, expected):
    now = newest + dt.timedelta(minutes=6, seconds=7)
    message = silence(newest, now, windows)
    assert message["text"] == (f"No word from alex_rpi since {newest.astimezone(ZONE):%H:%M} EET (6 min): "
                               f"power or internet is down there{expected}")
    document = webhook_document(message, message["text"])
    if windows is None:
        assert "schedule" not in message and "schedule" not in document
    else:
        assert document["schedule"] == (messages.outage_window(windows, newest) if expected else None)


def test_watchdog_run_fetches_the_schedule_once_and_tells_the_webhook(dynamodb, config, webhook, fake_schedule):
    """A real run (mock_aws): the watchdog's internet is up, so it may refresh the feed (fetch=True)."""
    import dynamo

    fake = fake_schedule([EVENING])
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    readings = [(table, dynamo.minute_item(Reading("alex_rpi", "4", local(2026, 12, 5, 17, 58) + dt.timedelta(minutes=i, seconds=3),
                                                   {"reading": 1}))) for i in range(5)]
    pk, sk = dynamo.registry_key("alex_rpi", "4")
    readings.append((table, {"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": "alex_rpi"}, "sensor": {"S": "4"}}))
    dynamo.put_all(dynamodb, readings)
    wd_config = {**config, "watch": ["alex_rpi"], "silent_after": 5, "timezone": KYIV, "secrets_parameter": None,
                 "telegram_token": None, "telegram_chat_id": None, "telegram_api_url": None,
                 "webhook_url": f"{webhook.url}/hook", "sns_topic_arn": None,
                 "schedule_ics": ["https://example.invalid/group-3.1.ics"], "schedule_possible": None}
    now = local(2026, 12, 5, 18, 15)
    assert watchdog.run(wd_config, now, dynamodb) == {"alex_rpi": "silent"}
    assert watchdog.run(wd_config, now + dt.timedelta(minutes=1), dynamodb) == {"alex_rpi": "quiet"}
    (body,) = delivered(webhook)
    assert body["text"] == ("No word from alex_rpi since 18:02 EET (12 min): power or internet is down there"
                            " — inside the scheduled outage 18:00–22:00 EET")
    assert body["schedule"] == {"start": iso(EVENING.start), "end": iso(EVENING.end), "possible": False}
    assert [call["fetch"] for call in fake.calls] == [True]


def test_readme_shows_these_texts():
    """README's examples (Notifications, "With a schedule") are the texts these tests make."""
    from tests.conftest import PROJECT_DIR

    text = (PROJECT_DIR / "README.md").read_text()
    block = text.split("**With a schedule**", 1)[1].split("```\n", 2)[1]
    at, noon = OFF_AT, local(2026, 12, 5, 12, 1)
    made = [
        message_text(power_message("off", at, **messages.schedule_fields([EVENING], at)), ZONE, sent_at=at),
        message_text(power_message("off", at, **messages.schedule_fields([window(EVENING.start, EVENING.end, True)], at)),
                     ZONE, sent_at=at),
        message_text(power_message("off", noon, **messages.schedule_fields([EVENING], noon)), ZONE, sent_at=noon),
        message_text(power_message("on", BACK_EARLY, began=at, **messages.schedule_fields([EVENING], at)), ZONE,
                     sent_at=BACK_EARLY),
        silence(at, at + dt.timedelta(minutes=6, seconds=7), [EVENING])["text"],
    ]
    assert block.strip().splitlines() == made


class HeardAgain:
    """watchdog.Readings of a device heard again at `back`, its pin's readings buffered meanwhile."""

    device = "alex_rpi"

    def __init__(self, back, pins):
        self.back, self._pins = back, pins

    def fresh(self):
        return self.back

    def latest(self):
        return self.back

    def pins(self, since, until):
        return self._pins


def pin_minutes(start, end, value):
    return [(start + dt.timedelta(minutes=i, seconds=3), value) for i in range(int((end - start) / dt.timedelta(minutes=1)))]


@pytest.mark.parametrize("off_until, windows, expected", [
    (local(2026, 12, 5, 20, 10), [EVENING],
     "the power was OFF 18:02–20:10 EET (2 h 8 min), 1 h 50 min before the scheduled end"),
    (local(2026, 12, 5, 20, 10), [], "the power was OFF 18:02–20:10 EET (2 h 8 min)"),
    (local(2026, 12, 5, 20, 10), None, "the power was OFF 18:02–20:10 EET (2 h 8 min)"),
    (None, [EVENING], "the power is OFF since 18:02 EET (2 h 13 min so far); it runs on its UPS; "
                      "scheduled 18:00–22:00 EET, expected back 22:00"),
    (None, [], "the power is OFF since 18:02 EET (2 h 13 min so far); it runs on its UPS; not in the schedule"),
])
def test_watchdog_back_tells_the_outage_against_its_window(off_until, windows, expected):
    silent_since, back = local(2026, 12, 5, 18, 1) + dt.timedelta(seconds=3), local(2026, 12, 5, 20, 15)
    pins = pin_minutes(local(2026, 12, 5, 17, 55), local(2026, 12, 5, 18, 2), 1)
    if off_until:
        pins += pin_minutes(local(2026, 12, 5, 18, 2), off_until, 0) + pin_minutes(off_until, back + dt.timedelta(minutes=1), 1)
    else:
        pins += pin_minutes(local(2026, 12, 5, 18, 2), back + dt.timedelta(minutes=1), 0)
    state = {"device": "alex_rpi", "phase": "silent", "silent_since": iso(silent_since), "silent_announced": True,
             "last_word": iso(silent_since), "outbox": []}
    new, (message,) = watchdog.decide(state, HeardAgain(back + dt.timedelta(seconds=3), pins), back + dt.timedelta(minutes=1),
                                      dt.timedelta(minutes=5), ZONE, (lambda: windows) if windows is not None else None)
    assert message["event"] == "back" and message["text"] == f"alex_rpi is back: {expected}"
    assert message.get("schedule", "absent") == ("absent" if windows is None else
                                                 messages.outage_window(windows, local(2026, 12, 5, 18, 2)))
