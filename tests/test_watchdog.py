"""watchdog.py: silent / back / cause over known readings, state, delivery, the Lambda handler.

In-process against moto's mock_aws, with a webhook receiver on 127.0.0.1. The end-to-end runs
of the real scripts are in tests/test_watchdog_e2e.py.
"""

import datetime as dt
import json
import logging
import uuid

import pytest

import channels
import dynamo
import watchdog_state
import status
import notify
import watchdog
from filebuffer import Reading

UTC = dt.timezone.utc
MINUTE = dt.timedelta(minutes=1)
DEVICE = "alex_rpi"
T0 = dt.datetime(2025, 6, 21, 22, 0, 3, tzinfo=UTC)  # readings are stamped 3 s into the minute


def at(hh_mm, day=21):
    hours, minutes = map(int, hh_mm.split(":"))
    return dt.datetime(2025, 6, day, hours, minutes, 3, tzinfo=UTC)


def minutes(start, end):
    """Every reading time from `start` up to, not including, `end` (one a minute)."""
    count = int((end - start).total_seconds() // 60)
    return [start + dt.timedelta(minutes=i) for i in range(count)]


def store(client, config, device, sensor, times, values):
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    pk, sk = dynamo.registry_key(device, sensor)
    client.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": device},
                                           "sensor": {"S": sensor}})
    items = [(table, dynamo.minute_item(Reading(device, sensor, ts, values(ts)))) for ts in times]
    dynamo.put_all(client, items)


def pin(client, config, start, end, value, device=DEVICE):
    store(client, config, device, "4", minutes(start, end), lambda ts: {"reading": value})


def env_sensor(client, config, start, end, device=DEVICE):
    store(client, config, device, "bme280", minutes(start, end),
          lambda ts: {"temperature_c": 21.5, "humidity_pct": 40.0, "pressure_hpa": 1010.0})


@pytest.fixture
def wd_config(config, webhook):
    return {**config, "watch": [DEVICE], "silent_after": 5, "timezone": None, "secrets_parameter": None,
            "telegram_token": None, "telegram_chat_id": None, "telegram_api_url": None,
            "webhook_url": f"{webhook.url}/hook", "sns_topic_arn": None}


def check(config, client, now):
    return watchdog.run(config, now, client)


def bodies(server):
    return [request.body for request in server.delivered()]


def state_of(client, config, device=DEVICE):
    return watchdog_state.load_watchdog_state(client, dynamo.table_names(config["table_prefix"])["minutes"], device)


# --- the decision over known readings -------------------------------------------------------------

def test_power_cut_with_the_link_down_is_two_messages(dynamodb, wd_config, webhook):
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    env_sensor(dynamodb, wd_config, T0, at("22:31"))
    # not yet 5 minutes; the first run records the device's sensors, so later runs need no registry
    assert check(wd_config, dynamodb, at("22:35") - dt.timedelta(seconds=1)) == {DEVICE: "recorded"}
    assert state_of(dynamodb, wd_config)["sensors"] == ["4", "bme280"]
    assert check(wd_config, dynamodb, at("22:36")) == {DEVICE: "silent"}
    assert check(wd_config, dynamodb, at("22:37")) == {DEVICE: "quiet"}
    (silent,) = bodies(webhook)
    assert silent["text"] == "No word from alex_rpi since 22:30 UTC (6 min): power or internet is down there"
    assert silent["event"] == "silent" and silent["silent_since"] == "2025-06-21T22:30:03.000000+00:00"
    assert set(silent) == {"id", "device", "event", "at", "silent_since", "text"}
    # the link returns at 01:30 and the Pi flushes what it buffered
    pin(dynamodb, wd_config, at("22:31"), at("01:30", 22), 0)
    pin(dynamodb, wd_config, at("01:30", 22), at("01:32", 22), 1)
    assert check(wd_config, dynamodb, at("01:32", 22)) == {DEVICE: "back"}
    assert check(wd_config, dynamodb, at("01:33", 22)) == {DEVICE: "quiet"}
    silent_again, back = bodies(webhook)
    assert silent_again == silent
    assert back["text"] == "alex_rpi is back: the power was OFF 2025-06-21 22:31–01:30 UTC (2 h 59 min)"
    assert (back["event"], back["cause"], back["off_minutes"], back["silent_minutes"]) == ("back", "power", 179, 181)
    assert back["silent_since"] == silent["silent_since"] and back["id"] != silent["id"]
    assert webhook.delivered()[1].headers["Idempotency-Key"] == back["id"]


def test_link_down_power_on(dynamodb, wd_config, webhook):
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    check(wd_config, dynamodb, at("22:40"))
    pin(dynamodb, wd_config, at("22:31"), at("23:11"), 1)
    assert check(wd_config, dynamodb, at("23:11")) == {DEVICE: "back"}
    _silent, back = bodies(webhook)
    assert back["text"] == "alex_rpi is back: the power stayed ON; the internet was down 22:30–23:10 UTC"
    assert (back["cause"], back["off_minutes"], back["silent_minutes"]) == ("link", 0, 40)


def test_pi_down_waits_for_the_backlog_then_says_unknown(dynamodb, wd_config, webhook):
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    check(wd_config, dynamodb, at("22:40"))
    pin(dynamodb, wd_config, at("01:30", 22), at("01:32", 22), 1)  # up again, nothing from the silence
    assert check(wd_config, dynamodb, at("01:32", 22)) == {DEVICE: "recorded"}  # resumed: waits
    assert state_of(dynamodb, wd_config)["phase"] == "resumed"
    assert check(wd_config, dynamodb, at("01:36", 22)) == {DEVICE: "quiet"}
    assert len(bodies(webhook)) == 1
    assert check(wd_config, dynamodb, at("01:37", 22)) == {DEVICE: "back"}
    back = bodies(webhook)[-1]
    assert back["cause"] == "unknown" and back["off_minutes"] == 0
    # the silence ended at the first reading after it (01:30), not the newest seen (01:31)
    assert back["text"] == ("alex_rpi is back after 3 h 0 min of silence (2025-06-21 22:30–01:30 UTC) without "
                            "readings of that time: the Pi itself was down, so the cause is unknown")
    assert (back["silent_minutes"], back["at"]) == (180, "2025-06-22T01:30:03.000000+00:00")


@pytest.mark.parametrize("cause, readings, text, silent_minutes", [
    # the link returns at 01:30 and the Pi flushes its backlog: OFF from 22:31, ON again from 01:20
    ("power", [("22:31", "01:20", 0), ("01:20", "01:35", 1)],
     "alex_rpi is back: the power was OFF 2025-06-21 22:31–01:20 UTC (2 h 49 min)", 184),
    # the UPS ran out at 23:00 (OFF until then), the power and the Pi came back at 01:30
    ("power", [("22:31", "23:00", 0), ("01:30", "01:35", 1)],
     "alex_rpi is back: the power was OFF 2025-06-21 22:31–01:30 UTC (2 h 59 min)", 180),
    ("link", [("22:31", "01:35", 1)],
     "alex_rpi is back: the power stayed ON; the internet was down 2025-06-21 22:30–01:34 UTC", 184),
    # the Pi was down from 22:31 to 01:30; the watchdog first looks at 01:35, when it has sent 01:30-01:34
    ("unknown", [("01:30", "01:35", 1)],
     "alex_rpi is back after 3 h 0 min of silence (2025-06-21 22:30–01:30 UTC) without readings of that time: "
     "the Pi itself was down, so the cause is unknown", 180),
])
def test_the_silence_ends_at_the_first_reading_after_it(dynamodb, wd_config, webhook, cause, readings, text,
                                                        silent_minutes):
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    assert check(wd_config, dynamodb, at("22:36")) == {DEVICE: "silent"}
    for start, end, value in readings:
        pin(dynamodb, wd_config, at(start, 21 if start > "12" else 22), at(end, 21 if end > "12" else 22), value)
    for minute in range(35, 45):  # the watchdog looks late, at 01:35, then every minute
        if check(wd_config, dynamodb, at(f"01:{minute}", 22)) == {DEVICE: "back"}:
            break
    silent, back = bodies(webhook)
    assert silent["text"] == "No word from alex_rpi since 22:30 UTC (6 min): power or internet is down there"
    assert (back["cause"], back["text"], back["silent_minutes"]) == (cause, text, silent_minutes)


def test_a_late_backlog_within_the_wait_still_tells_the_cause(dynamodb, wd_config, webhook):
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    check(wd_config, dynamodb, at("22:40"))
    pin(dynamodb, wd_config, at("23:00"), at("23:02"), 1)  # fresh readings first, the backlog after
    assert check(wd_config, dynamodb, at("23:02")) == {DEVICE: "recorded"}
    pin(dynamodb, wd_config, at("22:31"), at("23:00"), 0)
    assert check(wd_config, dynamodb, at("23:03")) == {DEVICE: "back"}
    assert bodies(webhook)[-1]["text"] == "alex_rpi is back: the power was OFF 22:31–23:00 UTC (29 min)"


@pytest.mark.parametrize("zone, silent, back", [
    ("Europe/Kyiv", "No word from alex_rpi since 01:30 EEST (6 min)", "the internet was down 01:30–02:10 EEST"),
    ("America/New_York", "No word from alex_rpi since 18:30 EDT (6 min)", "the internet was down 18:30–19:10 EDT"),
])
def test_times_in_the_users_zone(dynamodb, wd_config, webhook, zone, silent, back):
    wd_config["timezone"] = zone
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    check(wd_config, dynamodb, at("22:36"))
    pin(dynamodb, wd_config, at("22:31"), at("23:11"), 1)
    check(wd_config, dynamodb, at("23:11"))
    first, second = bodies(webhook)
    assert first["text"].startswith(silent) and back in second["text"]
    assert "UTC" not in first["text"] + second["text"]


def test_silence_shorter_than_silent_after_says_nothing(dynamodb, wd_config, webhook):
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    assert check(wd_config, dynamodb, at("22:31")) == {DEVICE: "recorded"}  # first sight: its sensors
    for minute in range(32, 44):  # 4 minutes without a reading, then OFF until 22:39, each as it comes
        if 34 <= minute <= 39:
            pin(dynamodb, wd_config, at(f"22:{minute}"), at(f"22:{minute}") + MINUTE, 0)
        assert check(wd_config, dynamodb, at(f"22:{minute}")) == {DEVICE: "quiet"}
    assert webhook.requests == [] and state_of(dynamodb, wd_config)["phase"] == "watching"


def test_device_never_seen(dynamodb, wd_config, webhook, caplog):
    wd_config["watch"] = ["nobody"]
    with caplog.at_level(logging.INFO):
        assert check(wd_config, dynamodb, at("22:36")) == {"nobody": "recorded"}
        assert check(wd_config, dynamodb, at("22:37")) == {"nobody": "quiet"}
    assert [r.levelname for r in caplog.records if "nobody" in r.getMessage()] == ["WARNING"]  # once
    assert state_of(dynamodb, wd_config, "nobody")["phase"] == "unseen"
    pin(dynamodb, wd_config, at("22:37"), at("22:39"), 1, device="nobody")
    assert check(wd_config, dynamodb, at("22:39")) == {"nobody": "recorded"}  # seen at last: watched
    # 22:44 is the first run that finds it silent (at 22:45, with no run at 22:44, it would be looked
    # at once more, a minute later: a stamp older than one run past silent_after may be a clock behind)
    assert check(wd_config, dynamodb, at("22:44")) == {"nobody": "silent"}
    assert webhook.requests[0].body["text"].startswith("No word from nobody since 22:38 UTC")


@pytest.mark.parametrize("skew, since, down", [
    (dt.timedelta(minutes=30), "22:30 UTC (5 min)", "22:30–22:50"),
    (dt.timedelta(minutes=-6), "22:30 UTC (5 min)", "22:30–22:50"),
    (dt.timedelta(minutes=1), "22:31 UTC (5 min)", "22:31–22:51"),  # within CLOCK_SKEW: judged by its stamps
], ids=["30 min ahead", "6 min behind", "1 min ahead"])
def test_a_pi_clock_off_is_judged_by_when_its_readings_arrive(dynamodb, wd_config, webhook, skew, since, down):
    """Readings arrive each minute stamped `skew` off: not silent while they come; the skew told
    once (when past SKEW_TELL); when they stop, 'since' is when the last one came, not its stamp."""
    pin(dynamodb, wd_config, at("22:00") + skew, at("22:20") + skew, 1)  # sent before the watchdog's first look
    for minute in range(20, 31):  # the Pi sends 22:20..22:30 (real time), the watchdog runs each minute
        pin(dynamodb, wd_config, at(f"22:{minute}") + skew, at(f"22:{minute + 1}") + skew, 1)
        assert check(wd_config, dynamodb, at(f"22:{minute}") + dt.timedelta(seconds=30))[DEVICE] != "silent"
    outcomes = [check(wd_config, dynamodb, at(f"22:{minute}") + dt.timedelta(seconds=30))[DEVICE]
                for minute in range(31, 37)]
    # silent at the first run more than silent_after (5 min) after the last reading came
    silent_at = 36 if since.startswith("22:31") else 35
    assert outcomes == ["quiet"] * (silent_at - 31) + ["silent"] + ["quiet"] * (36 - silent_at)
    texts = [body["text"] for body in bodies(webhook)]
    assert texts[-1] == f"No word from alex_rpi since {since}: power or internet is down there"
    skews = [body for body in bodies(webhook) if body["event"] == "skew"]
    if abs(skew) > watchdog_state.SKEW_TELL:
        (told,) = skews
        assert told["skew_minutes"] == skew // dt.timedelta(minutes=1)
        assert told["text"].startswith(f"alex_rpi's clock is {abs(skew) // dt.timedelta(minutes=1)} min "
                                       f"{'ahead' if skew > dt.timedelta(0) else 'behind'}: ")
        line = status.watchdog_status_line(dynamodb, dynamo.table_names(wd_config["table_prefix"])["minutes"],
                                           DEVICE, at("22:37"))
        assert f"its clock is {abs(skew) // dt.timedelta(minutes=1)} min" in line
    else:
        assert skews == [] and len(texts) == 1
    # back: the readings of the silence (all ON) tell an internet outage, at the right times
    pin(dynamodb, wd_config, at("22:31") + skew, at("22:51") + skew, 1)
    check(wd_config, dynamodb, at("22:50") + dt.timedelta(seconds=30))
    assert bodies(webhook)[-1]["text"] == f"alex_rpi is back: the power stayed ON; the internet was down {down} UTC"


def test_many_devices_each_on_its_own(dynamodb, wd_config, webhook):
    wd_config["watch"] = ["a", "b", "c"]
    for device in ("a", "b", "c"):
        pin(dynamodb, wd_config, T0, at("22:31" if device != "b" else "22:40"), 1, device=device)
    assert check(wd_config, dynamodb, at("22:40")) == {"a": "silent", "b": "recorded", "c": "silent"}
    assert check(wd_config, dynamodb, at("22:41")) == {"a": "quiet", "b": "quiet", "c": "quiet"}
    assert sorted(body["device"] for body in bodies(webhook)) == ["a", "c"]


# --- delivery: a channel down, a crash, overlapping runs ---------------------------------------------

def test_channel_down_during_the_announcement_sends_it_on_a_later_run_once(dynamodb, wd_config, webhook):
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    webhook.script = [(503, {"error": "down"}, {})]
    assert check(wd_config, dynamodb, at("22:36")) == {DEVICE: "silent"}
    assert bodies(webhook) == [] and len(state_of(dynamodb, wd_config)["outbox"]) == 1
    assert check(wd_config, dynamodb, at("22:37")) == {DEVICE: "delivered"}
    assert check(wd_config, dynamodb, at("22:38")) == {DEVICE: "quiet"}
    assert len(bodies(webhook)) == 1 and len(webhook.requests) == 2
    assert len({request.headers["Idempotency-Key"] for request in webhook.requests}) == 1
    assert state_of(dynamodb, wd_config)["outbox"] == []


def test_crash_between_send_and_record_resends_under_the_same_id(dynamodb, wd_config, webhook, monkeypatch):
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    real_save = watchdog_state.save_watchdog_state
    calls = []

    def save_then_die(client, table, state, version):
        calls.append(version)
        if len(calls) == 2:  # the record after sending: the process dies instead
            raise KeyboardInterrupt
        return real_save(client, table, state, version)

    monkeypatch.setattr(watchdog_state, "save_watchdog_state", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        check(wd_config, dynamodb, at("22:36"))
    monkeypatch.setattr(watchdog_state, "save_watchdog_state", real_save)
    assert len(bodies(webhook)) == 1
    # a run within the lease leaves it alone; after the lease the next run sends again, same id
    assert check(wd_config, dynamodb, at("22:36") + dt.timedelta(seconds=30)) == {DEVICE: "busy"}
    assert check(wd_config, dynamodb, at("22:38")) == {DEVICE: "delivered"}
    assert check(wd_config, dynamodb, at("22:39")) == {DEVICE: "quiet"}
    first, again = webhook.delivered()
    assert first.body == again.body and first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"]


def test_a_run_that_loses_the_conditional_write_announces_nothing(dynamodb, wd_config, webhook, monkeypatch):
    """Two runs read the same state; the second to write finds it changed and reads again."""
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    real_load = watchdog_state.load_watchdog_states
    raced = []

    def load_then_race(client, table, devices):
        states = real_load(client, table, devices)
        if not raced:  # another run decides and delivers between this read and this run's write
            raced.append(True)
            check(wd_config, dynamodb, at("22:36"))
        return states

    monkeypatch.setattr(watchdog_state, "load_watchdog_states", load_then_race)
    assert check(wd_config, dynamodb, at("22:36")) == {DEVICE: "quiet"}
    assert len(webhook.requests) == 1


def test_no_channel_logs_the_announcement(dynamodb, wd_config, caplog):
    wd_config["webhook_url"] = None
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    with caplog.at_level(logging.WARNING):
        assert check(wd_config, dynamodb, at("22:36")) == {DEVICE: "silent"}
    assert "No word from alex_rpi since 22:30 UTC (6 min)" in caplog.text
    assert state_of(dynamodb, wd_config)["outbox"] == []


def test_sns_fifo_gets_the_stable_id_as_deduplication_id(dynamodb, wd_config):
    import boto3

    sns, sqs = boto3.client("sns", region_name="us-east-1"), boto3.client("sqs", region_name="us-east-1")
    topic = sns.create_topic(Name="watch.fifo", Attributes={"FifoTopic": "true"})["TopicArn"]
    queue = sqs.create_queue(QueueName="inbox.fifo", Attributes={"FifoQueue": "true"})["QueueUrl"]
    queue_arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=queue_arn, Attributes={"RawMessageDelivery": "true"})
    wd_config.update(webhook_url=None, sns_topic_arn=topic)
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    check(wd_config, dynamodb, at("22:36"))
    (message,) = sqs.receive_message(QueueUrl=queue, AttributeNames=["All"], MessageAttributeNames=["All"])["Messages"]
    assert message["Body"].startswith("No word from alex_rpi since 22:30 UTC")
    assert message["MessageAttributes"]["event"]["StringValue"] == "silent"
    expected = uuid.uuid5(watchdog.ID_NAMESPACE, "alex_rpi/2025-06-21T22:30:03.000000+00:00/silent")
    assert message["Attributes"]["MessageDeduplicationId"] == str(expected)
    assert message["Attributes"]["MessageGroupId"] == "alex_rpi-watchdog"


# --- the verdict itself ------------------------------------------------------------------------------

@pytest.mark.parametrize("values, cause, complete", [
    ([1] * 30, "link", True),
    ([1] * 10 + [0] * 10 + [1] * 10, "power", True),
    ([1] * 10 + [None] * 10 + [1] * 10, "unknown", False),   # a 10-minute hole: the Pi was down
    ([1] * 10 + [None] * 4 + [1] * 16, "link", True),        # a hole shorter than silent_after
    ([None] * 30, "unknown", False),
    ([0] * 5 + [None] * 20 + [1] * 5, "power", False),       # OFF seen even with a hole
])
def test_judge(values, cause, complete):
    since = T0
    pins = [(since + dt.timedelta(minutes=i + 1), v) for i, v in enumerate(values) if v is not None]
    verdict = watchdog.judge(pins, since, since + dt.timedelta(minutes=len(values)), dt.timedelta(minutes=5))
    assert (verdict["cause"], verdict["complete"]) == (cause, complete)
    assert verdict["off_minutes"] == values.count(0)


def test_judge_finds_where_the_off_run_began_before_the_silence():
    pins = [(T0 + dt.timedelta(minutes=i), v) for i, v in enumerate([1, 0, 0, 0, 0, 0, 1])]
    verdict = watchdog.judge(pins, T0 + dt.timedelta(minutes=2), T0 + dt.timedelta(minutes=6), dt.timedelta(minutes=5))
    assert (verdict["off_from"], verdict["off_until"]) == (T0 + dt.timedelta(minutes=1), T0 + dt.timedelta(minutes=6))


# --- one story per outage: the Pi's late messages ------------------------------------------------------

def test_pi_keeps_quiet_about_what_the_watchdog_told(dynamodb, wd_config, webhook):
    table = dynamo.table_names(wd_config["table_prefix"])["minutes"]
    hook = channels.channel_id(channels.Webhook(wd_config["webhook_url"]))
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    check(wd_config, dynamodb, at("22:36"))
    told = watchdog_state.watchdog_outage(dynamodb, table, DEVICE)
    assert (told.since, told.until, told.silent, told.back) == (at("22:30"), None, {hook}, set())
    pi_config = {**wd_config, "pin": 4, "notify_after": 1}
    queue = pi_config["buffer_dir"] / "notify" / "queue"

    def minute(now, value, link_up):
        clock = lambda: now  # noqa: E731
        notifier = notify.Notifier(pi_config, clock=clock,
                                   watchdog_outage=lambda: watchdog_state.watchdog_outage(dynamodb, table, DEVICE))
        notifier.observe(Reading(DEVICE, "4", now, {"reading": value}))
        webhook.down = not link_up
        notifier.finish(link_up=link_up)  # as minute_job: DynamoDB unreachable, the watchdog's state unread

    minute(at("22:30"), 1, True)
    minute(at("22:31"), 0, False)   # power OFF, the link with it: queued
    minute(at("01:30", 22), 1, True)  # back: held on the channel that heard 'silent' until the story comes
    assert [body["event"] for body in bodies(webhook)] == ["silent"]
    assert len(list(queue.glob("*.json"))) == 2
    pin(dynamodb, wd_config, at("22:31"), at("01:30", 22), 0)
    pin(dynamodb, wd_config, at("01:30", 22), at("01:32", 22), 1)
    check(wd_config, dynamodb, at("01:32", 22))
    assert [body["event"] for body in bodies(webhook)] == ["silent", "back"]
    told = watchdog_state.watchdog_outage(dynamodb, table, DEVICE)
    assert (told.since, told.until, told.back) == (at("22:30"), at("01:31", 22), {hook})
    minute(at("01:33", 22), 1, True)  # the story was delivered there: the Pi's own messages are settled
    assert [body["event"] for body in bodies(webhook)] == ["silent", "back"]
    assert list(queue.glob("*.json")) == []
    # a later power cut with the link up is the Pi's own story
    minute(at("03:00", 22), 0, True)
    assert bodies(webhook)[-1]["state"] == "off"


def test_pi_sends_as_usual_when_the_watchdog_state_cant_be_read(config, webhook):
    pi_config = {**config, "pin": 4, "notify_after": 1, "webhook_url": f"{webhook.url}/hook",
                 "telegram_token": None, "telegram_chat_id": None, "sns_topic_arn": None, "timezone": None}

    def unreachable():
        raise dynamo.CloudUnreachable("no route")

    for now, value in ((at("22:30"), 1), (at("22:31"), 0)):
        notifier = notify.Notifier(pi_config, clock=lambda: now, watchdog_outage=unreachable)
        notifier.observe(Reading(DEVICE, "4", now, {"reading": value}))
        notifier.finish()
    assert [body["state"] for body in bodies(webhook)] == ["off"]


# --- status, the handler ------------------------------------------------------------------------------

def test_status_shows_what_the_watchdog_knows(dynamodb, wd_config, webhook):
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    status_config = {**wd_config, "device": DEVICE, "watch": [DEVICE, "ghost"]}
    lines = list(status.status_lines(status_config, dynamodb, now=at("22:33")))
    assert f"watchdog: {DEVICE}: last word 2025-06-21 22:30 UTC; nothing recorded" in "\n".join(lines)
    check({**wd_config, "watch": [DEVICE, "ghost"]}, dynamodb, at("22:36"))
    lines = "\n".join(status.status_lines(status_config, dynamodb, now=at("22:36")))
    assert f"watchdog: {DEVICE}: SILENT since 2025-06-21 22:30 UTC" in lines
    assert "watchdog: ghost: has never sent a reading" in lines


class LambdaContext:
    function_name = "blackout-monitor-watchdog"
    aws_request_id = "c0ffee"

    @staticmethod
    def get_remaining_time_in_millis():
        return 50_000


def test_handler_as_lambda_calls_it_with_secrets_from_ssm(dynamodb, wd_config, webhook, monkeypatch):
    import boto3

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/blackout/watchdog", Type="SecureString",
        Value=json.dumps({"webhook_url": f"{webhook.url}/hook/s3cr3t"}))
    for name, value in {"BLACKOUT_WATCH": f"{DEVICE} ghost", "BLACKOUT_TABLE_PREFIX": wd_config["table_prefix"],
                        "BLACKOUT_SECRETS_PARAMETER": "/blackout/watchdog", "BLACKOUT_TIMEZONE": "UTC"}.items():
        monkeypatch.setenv(name, value)
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    event = {"version": "0", "detail-type": "Scheduled Event", "source": "aws.scheduler", "at": "2025-06-21T22:35:10Z"}
    result = watchdog.handler(event, LambdaContext())
    assert result == {"checked": 2, "at": "2025-06-21T22:35:10.000000+00:00", "announced": [DEVICE]}
    (request,) = webhook.delivered()
    assert request.path == "/hook/s3cr3t" and request.body["text"].startswith("No word from alex_rpi since 22:30 UTC (")
    assert watchdog.handler(event, LambdaContext())["announced"] == []


def test_handler_secrets_from_secrets_manager(dynamodb, wd_config, webhook, monkeypatch):
    import boto3

    arn = boto3.client("secretsmanager", region_name="us-east-1").create_secret(
        Name="blackout", SecretString=json.dumps({"webhook_url": f"{webhook.url}/sm"}))["ARN"]
    monkeypatch.setenv("BLACKOUT_WATCH", DEVICE)
    monkeypatch.setenv("BLACKOUT_TABLE_PREFIX", wd_config["table_prefix"])
    monkeypatch.setenv("BLACKOUT_SECRETS_PARAMETER", arn)
    pin(dynamodb, wd_config, T0, at("22:31"), 1)
    watchdog.handler({"at": "2025-06-21T22:40"}, LambdaContext())
    assert [request.path for request in webhook.delivered()] == ["/sm"]


@pytest.mark.parametrize("stored, message", [
    (None, "ParameterNotFound"),
    ("not json", "is not a JSON object"),
    (json.dumps({"table_prefix": "x"}), "holds 'table_prefix'"),
    (json.dumps({"webhook_url": "ftp://x"}), "must be an http:// or https:// URL"),
])
def test_handler_bad_secrets_are_one_line_config_errors(mocked_aws, monkeypatch, stored, message):
    import boto3

    if stored is not None:
        boto3.client("ssm", region_name="us-east-1").put_parameter(Name="/bm", Type="SecureString", Value=stored)
    monkeypatch.setenv("BLACKOUT_WATCH", DEVICE)
    monkeypatch.setenv("BLACKOUT_SECRETS_PARAMETER", "/bm")
    with pytest.raises(watchdog.ConfigError, match=message):
        watchdog.handler({}, LambdaContext())
