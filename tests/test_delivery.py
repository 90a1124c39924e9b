"""Every outage told (#22): the Pi and the watchdog share one delivery guarantee.

In-process against mock_aws with injected clocks (each minute of the Pi and each watchdog run
is a direct call; no sleeps), a webhook receiver on 127.0.0.1 as the channel. Each working
channel hears each outage's story at least once, and at most once from each side; the
watchdog's outbox stays bounded whatever a channel does. The end-to-end runs of the real
scripts against moto's server are in tests/test_watchdog_e2e.py.
"""

import datetime as dt
import json
import logging

import pytest

import channels
import dynamo
import notify
import status
import watchdog
import watchdog_state
from channels import Outcome
from filebuffer import Reading
from messages import iso

UTC = dt.timezone.utc
DEVICE = "alex_rpi"
MINUTE = dt.timedelta(minutes=1)
T0 = dt.datetime(2025, 6, 21, 22, 0, 3, tzinfo=UTC)  # readings are stamped 3 s into the minute
SILENT_AFTER = 5


@pytest.fixture
def wd_config(config, webhook):
    return {**config, "watch": [DEVICE], "silent_after": SILENT_AFTER, "timezone": None, "secrets_parameter": None,
            "telegram_token": None, "telegram_chat_id": None, "telegram_api_url": None,
            "webhook_url": f"{webhook.url}/hook", "sns_topic_arn": None, "apprise_urls": None}


def table_of(config):
    return dynamo.table_names(config["table_prefix"])["minutes"]


def store(client, config, readings):
    """Pin readings [(ts, value)] in the minutes table, as a flush leaves them."""
    pk, sk = dynamo.registry_key(DEVICE, "4")
    client.put_item(TableName=table_of(config), Item={"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": DEVICE},
                                                      "sensor": {"S": "4"}})
    dynamo.put_all(client, [(table_of(config), dynamo.minute_item(Reading(DEVICE, "4", ts, {"reading": value})))
                            for ts, value in readings])


def test_a_channel_id_is_stable_distinct_and_not_its_name():
    hook = channels.Webhook("https://example.org/hook/secret")
    assert channels.channel_id(hook) == channels.channel_id(channels.Webhook("https://example.org/hook/secret"))
    others = [channels.Webhook("https://example.org/hook/other"), channels.Sns("arn:aws:sns:eu-west-1:1:t"),
              channels.Telegram("1:" + "a" * 30, "42", "https://api.telegram.org")]
    ids = {channels.channel_id(channel) for channel in [hook, *others]}
    assert len(ids) == 4 and all(len(key) == 16 for key in ids)
    hook.name = "webhook https example.org #ab12"  # display names may change (#23): the id does not
    assert channels.channel_id(hook) == channels.channel_id(channels.Webhook("https://example.org/hook/secret"))
    assert "secret" not in channels.channel_id(hook)


# --- the delivery matrix, in process ---------------------------------------------------------------

# What the watchdog's own channel does: none configured; the Pi's channel, working; the Pi's
# channel, failing while the power is off and working after; another channel that refuses it.
WATCHDOG_CHANNELS = ("none", "working", "failing then working", "refused for good")
# The Pi's link while the power is off: all up (router on a UPS); DynamoDB unreachable but the
# channel reachable (an AWS-side or ISP outage, a channel on the LAN); everything down.
PI_LINKS = ("up", "DynamoDB down, channel reachable", "everything down, then back")
OUTAGES = {"shorter than silent_after": 3, "longer than silent_after": 12}
# The Pi's clock against the watchdog's (its stamps minus the real time).
PI_CLOCKS = {"right": 0, "6 min behind": -6, "30 min ahead": 30}
# The full product (4 x 3 x 2 x 3 = 72 cells, ~3 s each) is too slow for every run: the right
# clock takes every cell; a wrong clock every watchdog channel and outage with everything down,
# then back (the watchdog tells the story), and a working watchdog channel with each other link.
CELLS = [(channel, link, off, "right") for channel in WATCHDOG_CHANNELS for link in PI_LINKS for off in OUTAGES]
CELLS += [(channel, "everything down, then back", off, clock) for clock in ("6 min behind", "30 min ahead")
          for channel in WATCHDOG_CHANNELS for off in OUTAGES]
CELLS += [("working", link, "longer than silent_after", clock) for clock in ("6 min behind", "30 min ahead")
          for link in PI_LINKS if link != "everything down, then back"]


def run_outage(client, config, webhook, watchdog_channel, pi_link, off_minutes, skew_minutes=0):
    """Minute by minute: the Pi's minute (read, buffer, flush if it can, send) and a watchdog
    run half a minute later, before, during and after a power cut of `off_minutes`. The Pi's
    clock (its readings' stamps, its messages' times) is `skew_minutes` off the real time."""
    skew = skew_minutes * MINUTE
    pi_config = {**config, "pin": 4, "notify_after": 1}
    wd_config = dict(config)
    if watchdog_channel == "none":
        wd_config["webhook_url"] = None
    elif watchdog_channel == "refused for good":
        wd_config["webhook_url"] = f"{webhook.url}/refused"
    refused = lambda path: (400, {"error": "no such hook"}, {}) if path.endswith("/refused") else (200, {}, {})  # noqa: E731
    webhook.answer = refused
    off_from = T0 + 31 * MINUTE
    off_until = off_from + off_minutes * MINUTE
    start = 30 if not skew else 27  # a wrong clock: the watchdog watches a few minutes before the cut
    store(client, config, [(T0 + i * MINUTE + skew, 1) for i in range(start + 1)])
    buffered = []
    minute = T0 + start * MINUTE
    end = off_until + 12 * MINUTE  # a backoff (5 min at most), the watchdog's wait for the backlog
    said_during = None
    while minute <= end:
        if minute == off_until:
            said_during = told(webhook)[0]  # what the Pi told before its link came back
        outage = off_from <= minute < off_until
        value = 0 if outage else 1
        dynamo_up = pi_link == "up" or not outage
        channel_up = pi_link != "everything down, then back" or not outage
        buffered.append((minute + skew, value))
        if dynamo_up:
            store(client, config, buffered)
            buffered = []
        notifier = notify.Notifier(pi_config, clock=lambda now=minute + skew: now, watchdog_outage=lambda: (
            watchdog_state.watchdog_outage(client, table_of(config), DEVICE)))
        notifier.observe(Reading(DEVICE, "4", minute + skew, {"reading": value}))
        webhook.down = not channel_up
        notifier.finish(link_up=dynamo_up)
        webhook.down = watchdog_channel == "failing then working" and outage
        watchdog.run(wd_config, minute + dt.timedelta(seconds=30), client)
        minute += MINUTE
    webhook.down = False
    return pi_config, said_during


def told(webhook):
    """(the Pi's power states, the watchdog's events) the Pi's channel acknowledged, in order."""
    hook = [request for request in webhook.delivered() if request.path == "/hook"]
    keys = [request.headers.get("Idempotency-Key") for request in hook]
    assert len(keys) == len(set(keys)), "a message was delivered twice by the same side"
    return ([request.body["state"] for request in hook if "state" in request.body],
            [request.body["event"] for request in hook if request.body.get("event") in ("silent", "back")])


def watchdog_texts(webhook):
    return {request.body["event"]: request.body["text"] for request in webhook.delivered()
            if request.path == "/hook" and "event" in request.body}


@pytest.mark.parametrize("watchdog_channel, pi_link, outage, pi_clock", CELLS)
def test_every_working_channel_hears_every_outage(dynamodb, wd_config, webhook, watchdog_channel, pi_link,
                                                  outage, pi_clock):
    off_minutes = OUTAGES[outage]
    pi_config, said_during = run_outage(dynamodb, wd_config, webhook, watchdog_channel, pi_link, off_minutes,
                                        PI_CLOCKS[pi_clock])
    pi_said, watchdog_said = told(webhook)
    # the times the watchdog tells are the real ones whatever the Pi's clock: its last reading
    # before the cut came at 22:30 UTC, the power was off from 22:31 for off_minutes
    texts = watchdog_texts(webhook)
    if "silent" in texts:
        assert texts["silent"].startswith("No word from alex_rpi since 22:30 UTC (")
    if "back" in texts:
        assert f"the power was OFF 22:31–22:{31 + off_minutes} UTC ({off_minutes} min)" in texts["back"]
    skews = [request for request in webhook.delivered() if request.body.get("event") == "skew"]
    assert len(skews) <= 1  # told once
    if pi_clock != "right" and watchdog_channel in ("working", "failing then working"):
        assert len(skews) == 1 and skews[0].body["skew_minutes"] == PI_CLOCKS[pi_clock]
    # at most once from each side
    assert pi_said.count("off") <= 1 and pi_said.count("on") <= 1
    assert watchdog_said.count("silent") <= 1 and watchdog_said.count("back") <= 1
    # at least once: the watchdog's story of the silence, or the Pi's own OFF and ON
    assert "back" in watchdog_said or pi_said == ["off", "on"]
    silent_long = pi_link != "up" and off_minutes > SILENT_AFTER
    if watchdog_channel in ("working", "failing then working") and silent_long:
        assert watchdog_said == ["silent", "back"]
    if watchdog_channel in ("none", "refused for good") or not silent_long:
        assert pi_said == ["off", "on"]  # nobody else told this channel: the Pi did
    if pi_link != "everything down, then back":
        assert said_during == ["off"]  # at once: messages never wait for DynamoDB
    queue = pi_config["buffer_dir"] / "notify" / "queue"
    assert list(queue.glob("*.json")) == []  # settled everywhere: nothing left waiting


def test_the_pi_sends_what_it_held_when_the_watchdogs_story_never_comes(dynamodb, wd_config, webhook):
    """'silent' reached the channel, then the watchdog stopped (no 'back' ever): the Pi holds
    its messages of the silence there WATCHDOG_HOLD at most, then tells the outage itself."""
    pi_config = {**wd_config, "pin": 4, "notify_after": 1}
    store(dynamodb, wd_config, [(T0 + i * MINUTE, 1) for i in range(31)])
    watchdog.run(wd_config, T0 + 36 * MINUTE, dynamodb)  # 'silent' delivered; then the watchdog dies
    back = T0 + 60 * MINUTE

    def pi_minute(now, value, link_up):
        notifier = notify.Notifier(pi_config, clock=lambda: now, watchdog_outage=lambda: (
            watchdog_state.watchdog_outage(dynamodb, table_of(wd_config), DEVICE)))
        notifier.observe(Reading(DEVICE, "4", now, {"reading": value}))
        webhook.down = not link_up
        notifier.finish(link_up=link_up)

    pi_minute(T0 + 30 * MINUTE, 1, True)
    pi_minute(T0 + 31 * MINUTE, 0, False)  # everything down: queued
    webhook.down = False
    hold = notify.WATCHDOG_HOLD // MINUTE
    for minute in range(hold + 6):
        pi_minute(back + minute * MINUTE, 1, True)
        if minute < hold:
            assert told(webhook) == ([], ["silent"])
    assert told(webhook) == (["off", "on"], ["silent"])


# --- the bounded outbox --------------------------------------------------------------------------

class AlwaysBusy:
    """A channel that fails temporarily, every time (a 503)."""

    name = "webhook busy"
    url = "https://busy.example.org/hook"
    sent = 0

    def send(self, message, text, timeout):
        AlwaysBusy.sent += 1
        return Outcome(False, "HTTP 503")


def test_5000_announcements_at_a_channel_that_always_fails_keep_the_device_watched(dynamodb, wd_config, caplog):
    """An outbox grows only to OUTBOX_LIMIT and OUTBOX_DAYS: the state item stays far below
    DynamoDB's 400 KB and every save succeeds, so the device is still watched."""
    table = table_of(wd_config)
    start = T0
    checker = watchdog.Run(wd_config, start, dynamodb)
    checker.channels = [AlwaysBusy()]
    state, version = {"device": DEVICE, "phase": "watching", "outbox": []}, 0
    caplog.set_level(logging.ERROR, "watchdog")
    biggest = 0
    for number in range(5000):
        now = start + number * 3 * MINUTE  # an announcement every 3 minutes: 10 days and more
        event = "silent" if number % 2 == 0 else "back"
        message = watchdog.announcement(DEVICE, event, now - 6 * MINUTE, now, f"announcement {number} " + "x" * 200)
        message["recorded"] = iso(now)
        state["outbox"] = watchdog.bound_outbox(state, state["outbox"] + [message], now)
        if number % 500 == 499:  # the state saved (and a delivery tried) now and then, as runs do
            checker.now = now
            assert watchdog_state.save_watchdog_state(dynamodb, table, state, version)
            version = state["version"]
            checker.deliver(state)
            version = state["version"]
            biggest = max(biggest, len(json.dumps(state["outbox"])))
    assert len(state["outbox"]) == watchdog_state.OUTBOX_LIMIT
    assert biggest < 100_000  # far below 400 KB
    assert state["dropped"] == 5000 - watchdog_state.OUTBOX_LIMIT
    assert AlwaysBusy.sent == 10  # one attempt a run: the first waiting message, then the channel stops
    dropped_lines = [record for record in caplog.records if "dropped undelivered" in record.getMessage()]
    assert dropped_lines and len(dropped_lines) == state["dropped"]  # one line each time some were dropped
    # still watched: a later run reads the state, sees the device silent and records it
    later = now + dt.timedelta(hours=1)
    store(dynamodb, wd_config, [(later - 20 * MINUTE, 1)])
    checker = watchdog.Run(wd_config, later, dynamodb)
    checker.channels = [AlwaysBusy()]
    assert checker.check(DEVICE) == "silent"
    saved = watchdog_state.load_watchdog_state(dynamodb, table, DEVICE)
    assert saved["phase"] == "silent" and len(saved["outbox"]) == watchdog_state.OUTBOX_LIMIT
    line = status.watchdog_status_line(dynamodb, table, DEVICE, later)
    assert f"{5000 - watchdog_state.OUTBOX_LIMIT + 1} announcement(s) dropped undelivered after 3 days" in line


def test_announcements_older_than_the_outbox_days_expire_with_a_log_line(caplog):
    state = {"device": DEVICE}
    now = T0 + dt.timedelta(days=10)
    old = watchdog.announcement(DEVICE, "silent", T0, T0, "old")
    old["recorded"] = iso(T0)
    fresh = watchdog.announcement(DEVICE, "silent", now, now, "new")
    fresh["recorded"] = iso(now - dt.timedelta(days=watchdog_state.OUTBOX_DAYS) + MINUTE)
    caplog.set_level(logging.ERROR, "watchdog")
    assert watchdog.bound_outbox(state, [old, fresh], now) == [fresh]
    assert state["dropped"] == 1 and state["dropped_at"] == iso(now)
    (record,) = [r for r in caplog.records if "dropped undelivered" in r.getMessage()]
    assert "1 announcement(s)" in record.getMessage()
