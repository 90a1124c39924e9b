"""Tests for notify.py: the pin's state, debounce, the durable queue, Telegram, webhook, SNS.

Telegram and the webhook are played by small HTTP servers on 127.0.0.1 (scriptable answers,
every request recorded); SNS is moto's, with an SQS queue subscribed so that what a
subscriber really receives (and FIFO deduplication) can be checked. Time is a fake clock:
each `cron_run` is one minute job, as cron would start it.
"""

import datetime as dt
import json
import logging
import re
import socket
import uuid

import pytest

import status
import messages
import notify
import read_pin
from filebuffer import Reading
from messages import duration_text, message_text
from tests.fakehttp import FakeServer
from utils import run_cli

UTC = dt.timezone.utc
TOKEN = "123456789:AAHf-secret_SECRET_secret_0123456789"
TOKEN_SECRET = TOKEN.split(":")[1]
WRONG_TOKEN = "123456789:AAHf-wrong_WRONG_wrong_01234567890"
CHAT_ID = "4242"
WEBHOOK_SECRET = "s3cr3t-hook-path"
T0 = dt.datetime(2025, 6, 21, 22, 0, tzinfo=UTC)


# --- fakes ---------------------------------------------------------------------------------

def telegram_answer(path):
    if path != f"/bot{TOKEN}/sendMessage":
        return 401, {"ok": False, "error_code": 401, "description": "Unauthorized"}, {}
    return 200, {"ok": True, "result": {"message_id": 1}}, {}


TELEGRAM_429 = (429, {"ok": False, "error_code": 429, "description": "Too Many Requests: retry after 120",
                      "parameters": {"retry_after": 120}}, {})
HTTP_500 = (500, {"error": "internal"}, {})


@pytest.fixture
def telegram():
    server = FakeServer(telegram_answer)
    yield server
    server.close()


class Clock:
    def __init__(self, now=T0):
        self.now = now

    def __call__(self):
        return self.now

    def advance(self, minutes=1):
        self.now += dt.timedelta(minutes=minutes)


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def cfg(config, telegram, webhook):
    """The conftest config plus notification keys: Telegram and the webhook on 127.0.0.1."""
    return {**config, "pin": 4, "notify_after": 1, "telegram_token": TOKEN, "telegram_chat_id": CHAT_ID,
            "telegram_api_url": telegram.url, "webhook_url": f"{webhook.url}/hooks/{WEBHOOK_SECRET}",
            "sns_topic_arn": None, "timezone": None}


def cron_run(cfg, clock, value, sensor="4"):
    """One minute job: a reading at the clock's time, then the send after the flush."""
    notifier = notify.Notifier(cfg, clock=clock)
    notifier.observe(Reading(cfg["device"], sensor, clock(), {"reading": value}))
    notifier.finish()
    return notifier


def texts(server):
    return [request.body["text"] for request in server.delivered()]


def queue_files(cfg, sub="queue"):
    return sorted((cfg["buffer_dir"] / "notify" / sub).glob("*.json"))


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class SnsTopic:
    """A moto SNS topic with an SQS queue subscribed (raw delivery): what a subscriber gets."""

    def __init__(self, fifo):
        import boto3

        self.sns = boto3.client("sns", region_name="us-east-1")
        self.sqs = boto3.client("sqs", region_name="us-east-1")
        suffix = ".fifo" if fifo else ""
        self.arn = self.sns.create_topic(Name=f"power{suffix}",
                                         Attributes={"FifoTopic": "true"} if fifo else {})["TopicArn"]
        self.queue = self.sqs.create_queue(QueueName=f"inbox{suffix}",
                                           Attributes={"FifoQueue": "true"} if fifo else {})["QueueUrl"]
        queue_arn = self.sqs.get_queue_attributes(QueueUrl=self.queue, AttributeNames=["QueueArn"])
        self.sns.subscribe(TopicArn=self.arn, Protocol="sqs", Endpoint=queue_arn["Attributes"]["QueueArn"],
                           Attributes={"RawMessageDelivery": "true"})
        self.received = []

    def receive(self):
        """Everything that arrived since the last call (and remembers it in `received`)."""
        new = []
        while True:
            answer = self.sqs.receive_message(QueueUrl=self.queue, MaxNumberOfMessages=10,
                                              AttributeNames=["All"], MessageAttributeNames=["All"])
            if not answer.get("Messages"):
                break
            for message in answer["Messages"]:
                new.append(message)
                self.sqs.delete_message(QueueUrl=self.queue, ReceiptHandle=message["ReceiptHandle"])
        self.received += new
        return new


# --- the state machine ---------------------------------------------------------------------

def feed(values, notify_after=1, start=T0, state=None):
    """Run readings one a minute through `advance`; returns (state, messages)."""
    messages = []
    for minute, value in enumerate(values):
        ts = start + dt.timedelta(minutes=minute, seconds=3)
        if state is None:
            state = notify.new_state("alex_rpi", "4", value, ts)
            continue
        state, message = notify.advance(state, value, ts, notify_after)
        if message:
            messages.append(message)
    return state, messages


def test_first_reading_only_records_the_state():
    state, messages = feed([0])
    assert messages == [] and state["state"] == 0 and state["since_known"] is False


def test_unchanged_readings_announce_nothing():
    state, messages = feed([1] * 30)
    assert messages == [] and state["seq"] == 0 and state["since"].startswith("2025-06-21T22:00:03")


def test_off_then_on_gives_the_outage_duration():
    values = [1] + [0] * 180 + [1]  # OFF from minute 1 to 180, back at minute 181
    state, messages = feed(values)
    off, on = messages
    assert (off["state"], off["previous_state"], off["duration_minutes"]) == ("off", "on", None)
    assert (on["state"], on["previous_state"], on["duration_minutes"]) == ("on", "off", 180)
    assert on["at"].startswith("2025-06-22T01:01:03") and off["id"] != on["id"]
    assert message_text(off) == "Power OFF at 2025-06-21 22:01 UTC (device alex_rpi, pin 4)"
    assert (message_text(on, sent_at=T0 + dt.timedelta(hours=3, minutes=1))
            == "Power back at 01:01 UTC after 3 h 0 min (device alex_rpi, pin 4)")


@pytest.mark.parametrize("minutes, text", [(0, "0 min"), (45, "45 min"), (180, "3 h 0 min"),
                                           (61, "1 h 1 min"), (1505, "1 d 1 h 5 min")])
def test_duration_text(minutes, text):
    assert duration_text(minutes) == text


def test_debounce_ignores_flapping_shorter_than_notify_after():
    flapping = [1, 0, 0, 1, 0, 1, 1, 0, 0, 1]
    _state, messages = feed(flapping, notify_after=3)
    assert messages == []
    _state, messages = feed(flapping, notify_after=2)
    assert [m["state"] for m in messages] == ["off", "on", "off"]  # the last single ON is not enough


def test_debounce_announces_the_first_reading_of_the_new_state():
    state, messages = feed([1, 0, 1, 0, 0, 0, 0], notify_after=3)
    (message,) = messages
    assert message["at"].startswith("2025-06-21T22:03:03")  # the run of OFFs began at minute 3
    assert message["queued_at"].startswith("2025-06-21T22:05:03")  # confirmed by its third
    assert state["since"] == message["at"] and state["candidate"] is None


# --- the minute job's hook and the channels ------------------------------------------------

def test_off_then_on_reaches_telegram_and_webhook(cfg, clock, telegram, webhook):
    cron_run(cfg, clock, 1)
    clock.now = dt.datetime(2025, 6, 21, 22, 30, tzinfo=UTC)
    cron_run(cfg, clock, 0)
    clock.now = dt.datetime(2025, 6, 22, 1, 30, tzinfo=UTC)
    cron_run(cfg, clock, 1)
    assert texts(telegram) == [
        "Power OFF at 22:30 UTC (device alex_rpi, pin 4)",
        "Power back at 01:30 UTC after 3 h 0 min (device alex_rpi, pin 4)",
    ]
    assert all(request.body["chat_id"] == CHAT_ID for request in telegram.requests)
    off, on = [request.body for request in webhook.delivered()]
    assert {k: v for k, v in off.items() if k not in ("id", "text")} == {
        "device": "alex_rpi", "sensor": "4", "state": "off", "at": "2025-06-21T22:30:00.000000+00:00",
        "previous_state": "on", "duration_minutes": None}
    assert (on["state"], on["previous_state"], on["duration_minutes"]) == ("on", "off", 180)
    keys = [request.headers["Idempotency-Key"] for request in webhook.delivered()]
    assert keys == [off["id"], on["id"]] and keys[0] != keys[1]
    assert queue_files(cfg) == []


def test_no_message_while_the_state_is_unchanged(cfg, clock, telegram, webhook):
    for _ in range(5):
        cron_run(cfg, clock, 1)
        clock.advance()
    assert telegram.requests == [] and webhook.requests == [] and queue_files(cfg) == []
    assert "power ON since at least" in "\n".join(notify.status_lines(cfg["buffer_dir"], now=clock()))


def test_flapping_relay_sends_nothing_then_a_held_change_once(cfg, clock, telegram, webhook):
    cfg["notify_after"] = 3
    for value in [1, 0, 0, 1, 0, 1, 0, 0, 1, 1]:
        cron_run(cfg, clock, value)
        clock.advance()
    assert telegram.requests == [] and webhook.requests == []
    first_off = clock()
    for value in [0, 0, 0, 0]:
        cron_run(cfg, clock, value)
        clock.advance()
    assert texts(telegram) == [f"Power OFF at {first_off:%H:%M} UTC (device alex_rpi, pin 4)"]
    assert len(webhook.delivered()) == 1


def test_link_down_for_an_hour_then_up(cfg, clock, telegram, webhook):
    cron_run(cfg, clock, 1)
    telegram.down = webhook.down = True
    clock.now = dt.datetime(2025, 6, 21, 22, 30, tzinfo=UTC)
    for minute in range(60):  # OFF 22:30-22:59, ON again from 23:00; the link is down all along
        cron_run(cfg, clock, 0 if minute < 30 else 1)
        clock.advance()
    assert telegram.requests == [] and webhook.requests == []
    assert 5 <= telegram.dropped < 20 and 5 <= webhook.dropped < 20  # backed off, not every minute
    assert len(queue_files(cfg)) == 2
    status = "\n".join(notify.status_lines(cfg["buffer_dir"], now=clock()))
    assert "notifications: 2 waiting" in status and "notification channel telegram: failing" in status
    telegram.down = webhook.down = False
    for _ in range(15):
        cron_run(cfg, clock, 1)
        clock.advance()
    late = r" — sent 23:[34]\d UTC, the link was down"
    off, on = texts(telegram)
    assert re.fullmatch(r"Power OFF at 22:30 UTC \(device alex_rpi, pin 4\)" + late, off)
    assert re.fullmatch(r"Power back at 23:00 UTC after 30 min \(device alex_rpi, pin 4\)" + late, on)
    assert [request.body["state"] for request in webhook.delivered()] == ["off", "on"]
    assert len(telegram.requests) == 2 and len(webhook.requests) == 2  # once each, no repeats
    assert queue_files(cfg) == [] and (cfg["buffer_dir"] / "notify" / "channels.json").read_text() == "{}"


def test_429_and_500_back_off_without_blocking_the_other_channels(mocked_aws, cfg, clock, telegram, webhook):
    topic = SnsTopic(fifo=False)
    cfg["sns_topic_arn"] = topic.arn
    cron_run(cfg, clock, 1)
    telegram.script.append(TELEGRAM_429)
    webhook.script.append(HTTP_500)
    clock.advance()
    cron_run(cfg, clock, 0)
    assert [m["Body"] for m in topic.receive()] == ["Power OFF at 22:01 UTC (device alex_rpi, pin 4)"]
    assert [r.status for r in telegram.requests] == [429] and [r.status for r in webhook.requests] == [500]
    (path,) = queue_files(cfg)
    assert set(json.loads(path.read_text())["delivered"]) == {"sns"}

    clock.advance()  # 22:02: the webhook's 30 s backoff is over, Telegram asked for 120 s
    cron_run(cfg, clock, 0)
    assert [r.status for r in webhook.requests] == [500, 200]
    assert [r.status for r in telegram.requests] == [429]
    clock.advance()  # 22:03: retry_after has passed
    cron_run(cfg, clock, 0)
    assert [r.status for r in telegram.requests] == [429, 200]
    assert topic.receive() == [] and queue_files(cfg) == []
    assert texts(telegram) == texts(webhook) == ["Power OFF at 22:01 UTC (device alex_rpi, pin 4)"]


def test_rejected_token_is_logged_by_channel_retried_then_given_up(cfg, clock, telegram, webhook, caplog):
    cfg["telegram_token"] = WRONG_TOKEN
    caplog.set_level(logging.INFO, logger="notify")
    cron_run(cfg, clock, 1)
    clock.advance()
    cron_run(cfg, clock, 0)
    assert len(webhook.delivered()) == 1 and [r.status for r in telegram.requests] == [401]
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert errors and all("telegram rejected" in e and "HTTP 401" in e and "check telegram_token" in e
                          for e in errors)
    assert len(queue_files(cfg)) == 1
    for _ in range(notify.MAX_REJECTIONS + 2):
        clock.advance(11)
        cron_run(cfg, clock, 0)
    assert len(telegram.requests) == notify.MAX_REJECTIONS and len(webhook.requests) == 1
    assert queue_files(cfg) == [] and len(queue_files(cfg, "bad")) == 1
    assert "given up by a channel" in "\n".join(notify.describe(cfg["buffer_dir"]))
    logged = caplog.text + "".join(p.read_text() for p in (cfg["buffer_dir"] / "notify").rglob("*.json"))
    assert "wrong_WRONG" not in logged and TOKEN_SECRET not in logged


class Crash(BaseException):
    """The process dies here (kill -9, power cut): nothing after it runs."""


def test_crash_between_queueing_and_sending_sends_once(mocked_aws, cfg, clock, telegram, webhook):
    topic = SnsTopic(fifo=True)
    cfg["sns_topic_arn"] = topic.arn
    cron_run(cfg, clock, 1)
    clock.advance()
    notify.Notifier(cfg, clock=clock).observe(Reading("alex_rpi", "4", clock(), {"reading": 0}))
    assert len(queue_files(cfg)) == 1 and telegram.requests == []  # queued, then the process died
    clock.advance()
    cron_run(cfg, clock, 0)
    assert len(telegram.delivered()) == len(webhook.delivered()) == len(topic.receive()) == 1
    assert queue_files(cfg) == []


@pytest.mark.parametrize("channel", ["telegram", "webhook", "sns"])
def test_crash_after_delivery_before_it_was_recorded(mocked_aws, cfg, clock, telegram, webhook, monkeypatch,
                                                     channel):
    """The retry repeats on that channel only: webhook and SNS FIFO can tell (same id), Telegram can't."""
    topic = SnsTopic(fifo=True)
    cfg["sns_topic_arn"] = topic.arn
    cron_run(cfg, clock, 1)
    clock.advance()
    real_write = notify._write_json

    def write_then_die(directory, name, document):
        if directory.name == "queue" and channel in document.get("delivered", ()):
            raise Crash()  # the channel accepted it; the record of that never reached the disk
        return real_write(directory, name, document)

    monkeypatch.setattr(notify, "_write_json", write_then_die)
    with pytest.raises(Crash):
        cron_run(cfg, clock, 0)
    monkeypatch.setattr(notify, "_write_json", real_write)
    clock.advance()
    cron_run(cfg, clock, 0)
    assert queue_files(cfg) == []
    keys = [request.headers["Idempotency-Key"] for request in webhook.delivered()]
    received = topic.receive()
    assert len(received) == 1  # SNS FIFO drops a repeat with the same deduplication id
    assert received[0]["Attributes"]["MessageDeduplicationId"] == keys[0]
    assert received[0]["Attributes"]["MessageGroupId"] == "alex_rpi-4"
    if channel == "webhook":
        assert len(keys) == 2 and keys[0] == keys[1]  # the receiver can drop the repeat
    else:
        assert len(keys) == 1
    # Telegram has no deduplication: the documented repeat
    assert len(telegram.delivered()) == (2 if channel == "telegram" else 1)


@pytest.mark.parametrize("die_after_queue", [False, True])
def test_crash_while_committing_an_announcement_neither_loses_nor_doubles_it(
        cfg, clock, telegram, webhook, monkeypatch, die_after_queue):
    cron_run(cfg, clock, 1)
    clock.advance()
    real_queue = notify.Notifier._queue

    def queue_and_die(self, messages):
        if die_after_queue:
            real_queue(self, messages)
        raise Crash()

    monkeypatch.setattr(notify.Notifier, "_queue", queue_and_die)
    with pytest.raises(Crash):
        cron_run(cfg, clock, 0)
    monkeypatch.setattr(notify.Notifier, "_queue", real_queue)
    assert len(queue_files(cfg)) == (1 if die_after_queue else 0)
    for _ in range(3):
        clock.advance()
        cron_run(cfg, clock, 0)
    assert texts(telegram) == ["Power OFF at 22:01 UTC (device alex_rpi, pin 4)"]
    assert len(webhook.delivered()) == 1 and queue_files(cfg) == []
    clock.now = dt.datetime(2025, 6, 21, 23, 1, tzinfo=UTC)  # the outage counts from the announced OFF
    cron_run(cfg, clock, 1)
    assert texts(telegram)[-1] == "Power back at 23:01 UTC after 1 h 0 min (device alex_rpi, pin 4)"


def test_sns_fifo_dedup_id_is_the_message_id_and_standard_topics_get_none(mocked_aws, cfg, clock):
    fifo, standard = SnsTopic(fifo=True), SnsTopic(fifo=False)
    cfg.update(telegram_token=None, telegram_chat_id=None, webhook_url=None, sns_topic_arn=fifo.arn)
    cron_run(cfg, clock, 1)
    clock.advance()
    cron_run(cfg, clock, 0)
    (message,) = fifo.receive()
    state = json.loads((cfg["buffer_dir"] / "notify" / "state-alex_rpi-4.json").read_text())
    assert message["Body"] == "Power OFF at 22:01 UTC (device alex_rpi, pin 4)"
    assert message["Attributes"]["MessageDeduplicationId"] == str(uuid.uuid5(notify.ID_NAMESPACE, f"{state['epoch']}/1"))
    assert message["Attributes"]["MessageGroupId"] == "alex_rpi-4"
    assert {k: v["StringValue"] for k, v in message["MessageAttributes"].items()} == {
        "device": "alex_rpi", "sensor": "4", "state": "off"}
    cfg["sns_topic_arn"] = standard.arn  # SNS refuses a deduplication id on a standard topic
    clock.advance()
    cron_run(cfg, clock, 1)
    (message,) = standard.receive()
    assert message["Body"] == "Power back at 22:02 UTC after 1 min (device alex_rpi, pin 4)"
    assert "MessageDeduplicationId" not in message["Attributes"] and queue_files(cfg) == []


def test_network_errors_never_show_the_token_or_webhook_secret(cfg, clock, telegram, webhook, monkeypatch, caplog):
    import urllib.request

    def fail(self, request, *args, **kwargs):
        raise urllib.error.URLError(f"can't reach {request.full_url}")

    monkeypatch.setattr(urllib.request.OpenerDirector, "open", fail)
    caplog.set_level(logging.INFO)
    cron_run(cfg, clock, 1)
    clock.advance()
    cron_run(cfg, clock, 0)
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 2 and "can't reach" in warnings[0]
    stored = (cfg["buffer_dir"] / "notify" / "channels.json").read_text()
    for text in (caplog.text, stored, "\n".join(notify.status_lines(cfg["buffer_dir"]))):
        assert TOKEN_SECRET not in text and WEBHOOK_SECRET not in text
        assert "***" in text


def test_timezone_shows_local_times(cfg, clock, telegram, webhook):
    cfg["timezone"] = "Europe/Kyiv"
    cron_run(cfg, clock, 1)
    clock.advance(30)
    cron_run(cfg, clock, 0)
    assert texts(telegram) == ["Power OFF at 01:30 EEST (device alex_rpi, pin 4)"]  # UTC+3 in summer


@pytest.mark.parametrize("zone, at, text", [
    ("Europe/Kyiv", dt.datetime(2025, 1, 10, 22, 30, tzinfo=UTC), "2025-01-11 00:30 EET"),
    ("Europe/Kyiv", dt.datetime(2025, 7, 10, 22, 30, tzinfo=UTC), "2025-07-11 01:30 EEST"),
    ("Asia/Kathmandu", dt.datetime(2025, 7, 10, 22, 30, tzinfo=UTC), "2025-07-11 04:15 +0545"),
    ("UTC", dt.datetime(2025, 7, 10, 22, 30, tzinfo=UTC), "2025-07-10 22:30 UTC"),
    (None, dt.datetime(2025, 7, 10, 22, 30, tzinfo=UTC), "2025-07-10 22:30 UTC"),
])
def test_every_time_carries_its_zone(zone, at, text):
    from zoneinfo import ZoneInfo

    assert messages.clock_text(at, ZoneInfo(zone) if zone else None) == text


def test_no_channel_configured_queues_nothing(cfg, clock, caplog):
    cfg.update(telegram_token=None, telegram_chat_id=None, webhook_url=None)
    caplog.set_level(logging.INFO, logger="notify")
    cron_run(cfg, clock, 1)
    clock.advance()
    cron_run(cfg, clock, 0)
    assert queue_files(cfg) == [] and "(no notification channel configured)" in caplog.text
    assert "power OFF since 22:01 UTC" in "\n".join(notify.status_lines(cfg["buffer_dir"], now=clock()))


def test_simulated_history_is_recorded_not_sent(cfg, clock, telegram, webhook):
    notifier = notify.Notifier(cfg, history=True, clock=clock)
    start = dt.datetime(2025, 6, 21, tzinfo=UTC)
    import sensors

    for minute in range(24 * 60):
        at = start + dt.timedelta(minutes=minute)
        notifier.observe(Reading("alex_rpi", "4", at, {"reading": sensors.simulated_pin_value(at)}))
    notifier.finish()
    assert telegram.requests == [] and webhook.requests == [] and queue_files(cfg) == []
    lines = notify.describe(cfg["buffer_dir"])
    assert lines[0] == "6 notifications would have been sent for the simulated history (never sent):"
    # the first reading was OFF: how long it was off is not known, only since when at least
    assert lines[1:3] == ["  Power back at 2025-06-21 00:30 UTC, off since at least 00:00 UTC (device alex_rpi, pin 4)",
                          "  Power OFF at 2025-06-21 06:00 UTC (device alex_rpi, pin 4)"]
    assert lines[3] == "  Power back at 2025-06-21 08:00 UTC after 2 h 0 min (device alex_rpi, pin 4)"
    clock.now = dt.datetime(2025, 6, 22, 0, 45, tzinfo=UTC)  # live again: continues from the history
    cron_run(cfg, clock, 1)
    assert texts(telegram) == ["Power back at 00:45 UTC after 1 h 15 min (device alex_rpi, pin 4)"]


def test_an_older_reading_does_not_move_the_state(cfg, clock, telegram):
    cron_run(cfg, clock, 1)
    clock.advance(-30)
    cron_run(cfg, clock, 0)
    assert telegram.requests == []
    state = json.loads((cfg["buffer_dir"] / "notify" / "state-alex_rpi-4.json").read_text())
    assert state["state"] == 1 and state["last_ts"].startswith("2025-06-21T22:00")


def test_notification_trouble_never_raises(cfg, clock, caplog):
    (cfg["buffer_dir"]).mkdir(parents=True)
    (cfg["buffer_dir"] / "notify").write_text("not a directory")
    notifier = cron_run(cfg, clock, 1)
    assert notifier.failed and "notifications: can't update the pin state" in caplog.text


def test_status_command_shows_state_and_queue(dynamodb, config, cfg, clock, telegram, webhook):
    telegram.down = True
    cron_run(cfg, clock, 1)
    clock.advance(5)
    cron_run(cfg, clock, 0)
    lines = list(status.status_lines(config, dynamodb, now=clock()))
    assert "device alex_rpi pin 4: power OFF since 22:05 UTC (last reading 22:05 UTC)" in lines
    assert "notifications: 1 waiting, oldest from 22:05 UTC" in lines[2]
    assert lines[3].startswith("notification channel telegram: failing since 22:05 UTC (1 attempts)")


# --- configuration and --test-notify -------------------------------------------------------

@pytest.fixture
def cli_env(monkeypatch, tmp_path):
    (tmp_path / "config.toml").write_text("")
    monkeypatch.setenv("BLACKOUT_CONFIG", str(tmp_path / "config.toml"))
    monkeypatch.setenv("BLACKOUT_BUFFER_DIR", str(tmp_path / "buffer"))
    monkeypatch.setenv("BLACKOUT_LOG_DIR", str(tmp_path / "logs"))
    monkeypatch.setenv("BLACKOUT_DEVICE", "alex_rpi")
    return monkeypatch


@pytest.mark.parametrize("env, flags, named, secret", [
    ({"BLACKOUT_TELEGRAM_TOKEN": "12345:tooshort-secretish"}, [], "BLACKOUT_TELEGRAM_TOKEN", "tooshort-secretish"),
    ({}, ["--telegram-token", "AAHf-secret_SECRET_secret_0123456789"], "--telegram-token", "AAHf-secret"),
    ({"BLACKOUT_TELEGRAM_TOKEN": TOKEN, "BLACKOUT_TELEGRAM_CHAT_ID": "my chat"}, [], "BLACKOUT_TELEGRAM_CHAT_ID",
     TOKEN_SECRET),
    ({"BLACKOUT_TELEGRAM_TOKEN": TOKEN}, [], "telegram_chat_id", TOKEN_SECRET),
    ({"BLACKOUT_TELEGRAM_CHAT_ID": CHAT_ID}, [], "telegram_token", "\0"),
    ({}, ["--webhook-url", f"ftp://hooks.example.com/{WEBHOOK_SECRET}"], "--webhook-url", WEBHOOK_SECRET),
    ({"BLACKOUT_WEBHOOK_URL": f"hooks.example.com/{WEBHOOK_SECRET}"}, [], "BLACKOUT_WEBHOOK_URL", WEBHOOK_SECRET),
    ({}, ["--telegram-api-url", "api.telegram.org"], "--telegram-api-url", "\0"),
    ({"BLACKOUT_SNS_TOPIC_ARN": "arn:aws:sqs:us-east-1:123456789012:q"}, [], "BLACKOUT_SNS_TOPIC_ARN", "\0"),
    ({}, ["--notify-after", "0"], "--notify-after", "\0"),
    ({"BLACKOUT_TIMEZONE": "Mars/Olympus"}, [], "BLACKOUT_TIMEZONE", "\0"),
])
def test_bad_notification_config_is_one_line_exit_2(cli_env, capsys, env, flags, named, secret):
    for name, value in env.items():
        cli_env.setenv(name, value)
    code = run_cli(read_pin.main, ["--pin", "4", "--simulate", "--value", "1", *flags])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("Error: ") and named in err, err
    assert secret not in err and "Traceback" not in err


def test_bad_token_in_config_file_from_a_real_process(server_env, tmp_path):
    from tests.conftest import run_script

    (tmp_path / "config.toml").write_text(f'telegram_token = "{TOKEN_SECRET}"\ntelegram_chat_id = 42\n')
    result = run_script("read_pin.py", "--pin", "4", "--simulate", "--value", "1", env=server_env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.count("\n") == 1 and f"telegram_token in {tmp_path / 'config.toml'}" in result.stderr
    assert TOKEN_SECRET not in result.stderr
    assert not (tmp_path / "buffer").exists() or not list((tmp_path / "buffer").glob("*.json"))


def test_test_notify_all_channels_ok(mocked_aws, cli_env, capsys, telegram, webhook, tmp_path):
    topic = SnsTopic(fifo=True)
    for name, value in {"TELEGRAM_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": CHAT_ID, "TELEGRAM_API_URL": telegram.url,
                        "WEBHOOK_URL": webhook.url + "/hook", "SNS_TOPIC_ARN": topic.arn, "PIN": "4"}.items():
        cli_env.setenv("BLACKOUT_" + name, value)
    code = run_cli(read_pin.main, ["--test-notify"])
    out = capsys.readouterr().out.splitlines()
    assert code == 0
    assert [line.split(":")[0:2] for line in out] == [["telegram", " ok"], ["webhook", " ok"], ["sns", " ok"]]
    (text,) = texts(telegram)
    assert text.startswith("Test message from blackout-monitor (device alex_rpi, pin 4)")
    assert webhook.delivered()[0].body["state"] == "test"
    assert [m["Body"] for m in topic.receive()] == [text]
    assert not (tmp_path / "buffer" / "notify" / "queue").exists()  # a test message is never queued


def test_webhook_credentials_in_the_url_go_as_basic_auth_never_to_the_log(cli_env, capsys, webhook, tmp_path):
    import base64

    url = webhook.url.replace("http://", "http://hook%40user:s3cr%3At@") + "/hook"
    cli_env.setenv("BLACKOUT_WEBHOOK_URL", url)
    cli_env.setenv("BLACKOUT_PIN", "4")
    assert run_cli(read_pin.main, ["--test-notify"]) == 0
    (request,) = webhook.delivered()
    assert request.path == "/hook"
    assert request.headers["Authorization"] == "Basic " + base64.b64encode(b"hook@user:s3cr:t").decode()
    logged = capsys.readouterr()
    logged = logged.out + logged.err + "".join(path.read_text() for path in (tmp_path / "logs").glob("*.log"))
    assert "s3cr" not in logged


def test_test_notify_reports_each_failure(cli_env, capsys, telegram, tmp_path):
    for name, value in {"TELEGRAM_TOKEN": WRONG_TOKEN, "TELEGRAM_CHAT_ID": CHAT_ID,
                        "TELEGRAM_API_URL": telegram.url,
                        "WEBHOOK_URL": f"http://127.0.0.1:{free_port()}/{WEBHOOK_SECRET}"}.items():
        cli_env.setenv("BLACKOUT_" + name, value)
    code = run_cli(read_pin.main, ["--test-notify"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert code == 1 and len(lines) == 2
    assert lines[0].startswith("telegram: FAILED: HTTP 401") and "check telegram_token" in lines[0]
    assert lines[1].startswith("webhook: FAILED: ")
    assert captured.err == ""  # each failure once, not again as a log line on stderr
    logged = "".join(path.read_text() for path in (tmp_path / "logs").glob("*.log"))
    assert "ERROR test notification via telegram: HTTP 401" in logged  # the log keeps it
    everything = captured.out + captured.err
    assert "wrong_WRONG" not in everything and WEBHOOK_SECRET not in everything


def test_test_notify_without_channels_is_a_usage_error(cli_env, capsys):
    code = run_cli(read_pin.main, ["--test-notify"])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    assert captured.err.count("\n") == 1 and captured.err.startswith("Error: no notification channel configured")


# --- end to end: the real script, as cron runs it ----------------------------------------------

@pytest.fixture
def e2e_env(server_env, telegram, webhook):
    env = dict(server_env, BLACKOUT_DEVICE="e2e_rpi", BLACKOUT_PIN="4", BLACKOUT_TELEGRAM_TOKEN=TOKEN,
               BLACKOUT_TELEGRAM_CHAT_ID=CHAT_ID, BLACKOUT_TELEGRAM_API_URL=telegram.url,
               BLACKOUT_WEBHOOK_URL=f"{webhook.url}/hooks/{WEBHOOK_SECRET}")
    return env


def test_read_pin_end_to_end_against_fake_telegram_and_webhook(server_client, e2e_env, telegram, webhook,
                                                                tmp_path):
    from tests.conftest import run_script

    def read(*args):
        result = run_script("read_pin.py", "--simulate", *args, env=e2e_env)
        assert result.returncode == 0, result.stderr
        assert TOKEN_SECRET not in result.stderr + result.stdout
        return result

    read("--at", "2025-06-21T22:29", "--value", "1")  # the first reading only records the state
    assert telegram.requests == []
    read("--at", "2025-06-21T22:30", "--value", "0")
    read("--at", "2025-06-22T01:30", "--value", "1")
    read("--value", "0")  # now
    read("--value", "1")  # however long this machine took to get here
    documents = [r.body for r in webhook.delivered()]
    assert [(d["state"], d["previous_state"]) for d in documents] == [("off", "on"), ("on", "off")] * 2
    at = [dt.datetime.fromisoformat(d["at"]) for d in documents]
    since_back = round((at[2] - dt.datetime(2025, 6, 22, 1, 30, tzinfo=UTC)).total_seconds() / 60)
    off_for = round((at[3] - at[2]).total_seconds() / 60)
    assert [d["duration_minutes"] for d in documents] == [None, 180, since_back, off_for]
    assert texts(telegram)[:2] == ["Power OFF at 2025-06-21 22:30 UTC (device e2e_rpi, pin 4)",
                                   "Power back at 2025-06-22 01:30 UTC after 3 h 0 min (device e2e_rpi, pin 4)"]
    assert re.fullmatch(r"Power OFF at \d\d:\d\d UTC \(device e2e_rpi, pin 4\)", texts(telegram)[2])
    assert re.fullmatch(rf"Power back at \d\d:\d\d UTC after {off_for} min \(device e2e_rpi, pin 4\)",
                        texts(telegram)[3])
    assert len(telegram.requests) == 4
    assert len({r.headers["Idempotency-Key"] for r in webhook.requests}) == 4
    status = run_script("dynamo.py", "status", "--device", "e2e_rpi", env=e2e_env)
    assert status.returncode == 0, status.stderr
    assert "device e2e_rpi pin 4: power ON since" in status.stdout
    assert "notifications: 0 waiting" in status.stdout
    logs = "".join(p.read_text() for p in (tmp_path / "logs").glob("*.log"))
    assert "notified via telegram" in logs and TOKEN_SECRET not in logs and WEBHOOK_SECRET not in logs


def test_generated_history_is_listed_never_sent(server_env, e2e_env, telegram, webhook):
    from tests.conftest import run_script

    result = run_script("read_pin.py", "--simulate", "--at", "2025-06-21T00:00", "--until", "2025-06-23T00:00",
                        "--no-flush", env=e2e_env)
    assert result.returncode == 0, result.stderr
    assert telegram.requests == [] and webhook.requests == []
    listing = run_script("notify.py", "list", env=e2e_env)
    lines = listing.stdout.splitlines()
    assert listing.returncode == 0 and len(lines) == 1 + 12
    assert lines[0] == "12 notifications would have been sent for the simulated history (never sent):"
    assert lines[-1] == "  Power OFF at 2025-06-22 23:30 UTC (device e2e_rpi, pin 4)"


def test_a_dead_link_or_broken_notify_dir_never_costs_the_reading(server_env, e2e_env, tmp_path):
    from tests.conftest import run_script

    env = dict(e2e_env, BLACKOUT_TELEGRAM_API_URL=f"http://127.0.0.1:{free_port()}",
               BLACKOUT_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/{WEBHOOK_SECRET}")
    for value in ("1", "0"):
        result = run_script("read_pin.py", "--simulate", "--value", value, "--no-flush", env=env)
        assert result.returncode == 0, result.stderr
    assert "notification via telegram not sent" in result.stderr
    assert TOKEN_SECRET not in result.stderr and WEBHOOK_SECRET not in result.stderr
    assert len(list((tmp_path / "buffer").glob("*.json"))) == 2
    assert len(list((tmp_path / "buffer" / "notify" / "queue").glob("*.json"))) == 1
    notify_dir = tmp_path / "buffer" / "notify"
    import shutil

    shutil.rmtree(notify_dir)
    notify_dir.write_text("in the way")
    result = run_script("read_pin.py", "--simulate", "--value", "1", "--no-flush", env=env)
    assert result.returncode == 0, result.stderr
    assert "notifications: can't update the pin state" in result.stderr
    assert len(list((tmp_path / "buffer").glob("*.json"))) == 3
