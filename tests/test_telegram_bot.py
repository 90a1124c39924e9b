"""telegram_bot.py: Bot API update documents answered against a fake Bot API on 127.0.0.1,
readings in mock_aws (a day and a half in Kyiv, days items before it), the Lambda handler
called as a function URL calls it (payload 2.0), and `--poll` run as cron runs it against
moto's server, twice, answering each update once.

The readings: power ON, except an outage across local midnight (26 Oct 23:30 to 27 Oct
00:40, 70 min) and one today 08:00-08:45; the BME280 in the last two hours. Now is 27 Oct
12:00 in Kyiv (EET). Days items for 21-26 Oct.
"""

import base64
import datetime as dt
import json
import logging
import os
import uuid
from unittest import mock

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import dynamo
import status_page
import telegram_bot
import utils
from filebuffer import Reading
from tests.conftest import FAKE_CREDENTIALS, PROJECT_DIR, run_script
from tests.fakebot import BOT_USERNAME, FakeBotApi

KYIV = "Europe/Kyiv"
DEVICE = "kyiv_rpi"
PREFIX = "bot-test"
TOKEN = "123456789:AAE_fake-token-for-the-tests-0123456789"
SECRET = "webhook-secret-0123456789abcdef"
OWNER, GROUP, CHANNEL, STRANGER = 111111, -1001234567890, -1009876543210, 999999
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def local(*fields):
    return dt.datetime(*fields, tzinfo=utils.zone(KYIV)).astimezone(dt.timezone.utc)


NOW = local(2025, 10, 27, 12, 0)
OUTAGES = [(local(2025, 10, 26, 23, 30), local(2025, 10, 27, 0, 40)), (local(2025, 10, 27, 8, 0), local(2025, 10, 27, 8, 45))]
# (date, on, off, outages) of the days items before today
DAYS = [(dt.date(2025, 10, 21), 1440, 0, 0), (dt.date(2025, 10, 22), 1320, 120, 1), (dt.date(2025, 10, 23), 1440, 0, 0),
        (dt.date(2025, 10, 24), 1320, 0, 0), (dt.date(2025, 10, 25), 1380, 60, 2), (dt.date(2025, 10, 26), 1430, 70, 1)]


def seed_items(tables, start, now, outages, days=()):
    items, minute = [], start
    while minute <= now:
        ts = minute + dt.timedelta(seconds=3)
        value = 0 if any(first <= minute < end for first, end in outages) else 1
        items.append((tables["minutes"], dynamo.minute_item(Reading(DEVICE, "4", ts, {"reading": value}))))
        if minute >= now - dt.timedelta(hours=2):
            values = {"temperature_c": 21.5, "humidity_pct": 55.0, "pressure_hpa": 1000.0}
            items.append((tables["minutes"], dynamo.minute_item(Reading(DEVICE, "bme280", ts, values))))
        minute += dt.timedelta(minutes=1)
    for sensor in ("4", "bme280"):
        pk, sk = dynamo.registry_key(DEVICE, sensor)
        items.append((tables["minutes"], {"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": DEVICE},
                                          "sensor": {"S": sensor}}))
    zone = utils.zone(KYIV)
    for day, on, off, count in days:
        first, end = status_page.day_window(day, zone)
        expected = (end - first) // dt.timedelta(minutes=1)
        stats = {"count": on + off, "expected": expected, "unknown": expected - on - off, "on": on, "off": off,
                 "uptime": on / (on + off), "outages": count, "longest_outage_minutes": 60 if off else 0,
                 **dynamo.day_attributes(first, zone)}
        items.append((tables["days"], dynamo.day_item(DEVICE, "4", day, stats, now)))
    return items


class Meter:
    """DynamoDB requests by operation and table, counted with a botocore hook."""

    def __init__(self, client):
        self.calls = []
        client.meta.events.register("provide-client-params.dynamodb", self.count)

    def count(self, params, model, **_kwargs):
        self.calls.append((model.name, params.get("TableName", "")))

    def take(self):
        calls, self.calls = self.calls, []
        return calls


@pytest.fixture(scope="module")
def cloud():
    """(client, meter) with the readings in mock_aws; the mock stays on for the module."""
    from moto import mock_aws

    with mock.patch.dict(os.environ, FAKE_CREDENTIALS), mock_aws():
        client = dynamo.aws_client()
        dynamo.create_tables({"table_prefix": PREFIX, "retention_days": None}, client)
        dynamo.put_all(client, seed_items(dynamo.table_names(PREFIX), local(2025, 10, 26), NOW, OUTAGES, DAYS))
        yield client, Meter(client)


@pytest.fixture
def fake_api():
    server = FakeBotApi(TOKEN)
    yield server
    server.close()


@pytest.fixture
def bot_config(fake_api):
    return {"device": DEVICE, "watch": None, "table_prefix": PREFIX, "timezone": KYIV, "silent_after": 5,
            "telegram_token": TOKEN, "telegram_chat_id": (str(OWNER), str(GROUP), str(CHANNEL)),
            "telegram_api_url": fake_api.url, "telegram_webhook_secret": SECRET, "status_pages": None,
            "status_page_id": None, "status_page_url": None}


@pytest.fixture
def bot(cloud, bot_config):
    client, meter = cloud
    meter.take()
    return telegram_bot.Bot(bot_config, lambda: client)


# --- update documents in the shapes of the Bot API ------------------------------------------------

def _entities(text):
    word = text.split(" ")[0]
    return [{"offset": 0, "length": len(word), "type": "bot_command"}] if text.startswith("/") else []


def private_message(text, update_id=1000, chat=OWNER):
    return {"update_id": update_id, "message": {
        "message_id": 7, "from": {"id": chat, "is_bot": False, "first_name": "Olena", "language_code": "uk"},
        "chat": {"id": chat, "first_name": "Olena", "type": "private"}, "date": 1761559200, "text": text,
        "entities": _entities(text)}}


def group_message(text, update_id=1001, chat=GROUP):
    return {"update_id": update_id, "message": {
        "message_id": 8, "from": {"id": OWNER, "is_bot": False, "first_name": "Olena"},
        "chat": {"id": chat, "title": "Home", "type": "supergroup"}, "date": 1761559200, "text": text,
        "entities": _entities(text)}}


def channel_post(text, update_id=1002, chat=CHANNEL):
    return {"update_id": update_id, "channel_post": {
        "message_id": 9, "sender_chat": {"id": chat, "title": "Power at home", "type": "channel"},
        "chat": {"id": chat, "title": "Power at home", "type": "channel"}, "date": 1761559200, "text": text,
        "entities": _entities(text)}}


def edited_message(text, update_id=1003):
    update = private_message(text, update_id)
    update["edited_message"] = {**update.pop("message"), "edit_date": 1761559260}
    return update


def callback_query(update_id=1004):
    return {"update_id": update_id, "callback_query": {
        "id": "4382bfdwdsb323b2d9", "from": {"id": OWNER, "is_bot": False, "first_name": "Olena"},
        "message": private_message("/status")["message"], "chat_instance": "-8112740921", "data": "week"}}


def png_size(data):
    """(width, height) of a PNG from its IHDR chunk, after checking the signature."""
    assert data[:8] == PNG_SIGNATURE and data[12:16] == b"IHDR"
    return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")


# --- the commands -------------------------------------------------------------------------------

def test_status_is_the_now_card_in_words(bot, fake_api):
    assert bot.handle(private_message("/status"), NOW) == "answered"
    (method, chat, text, photo), = fake_api.sent()
    assert (method, chat, photo) == ("sendMessage", str(OWNER), None)
    assert text.splitlines() == [f"{DEVICE}: Power ON", "since 27 Oct 08:45 (3 h 15 min)", "Room: 21.5 °C, 55 % humidity",
                                 "Today: ON 10 h 36 min, OFF 1 h 25 min, no reading 0 min; 1 outage, the longest 45 min",
                                 "Updated 12:00 (EET)"]


def test_status_says_when_the_state_held_all_day(bot, fake_api):
    later = local(2025, 10, 27, 8, 30)
    bot.handle(private_message("/status"), later)
    assert fake_api.sent()[-1][2].splitlines()[:2] == [f"{DEVICE}: Power OFF", "since 27 Oct 08:00 (30 min)"]
    bot.handle(private_message("/status"), local(2025, 10, 26, 20, 0))  # the 26th is 25 h long: clocks back
    assert fake_api.sent()[-1][2].splitlines()[:2] == [f"{DEVICE}: Power ON",
                                                       "since before 26 Oct 00:00 (more than 21 h)"]


def test_today_is_a_picture_with_the_totals(bot, fake_api):
    import matplotlib.image

    assert bot.handle(private_message("/today"), NOW) == "answered"
    (method, chat, caption, photo), = fake_api.sent()
    assert (method, chat) == ("sendPhoto", str(OWNER))
    width, height = png_size(photo)
    assert width >= 600 and height >= 100
    pixels = matplotlib.image.imread(__import__("io").BytesIO(photo), format="png")
    assert pixels.shape[:2] == (height, width)
    assert caption.splitlines() == [f"{DEVICE}, Mon 27 Oct ({KYIV}):",
                                    "ON 10 h 36 min, OFF 1 h 25 min, no reading 0 min; 1 outage, the longest 45 min",
                                    "27 Oct 00:00 – 00:40: 40 min (it began before midnight)", "27 Oct 08:00 – 08:45: 45 min"]


def test_week_reads_days_items_not_a_week_of_minutes(bot, fake_api, cloud):
    _client, meter = cloud
    assert bot.handle(group_message(f"/week@{BOT_USERNAME}"), NOW) == "answered"
    (method, chat, caption, photo), = fake_api.sent()
    assert (method, chat) == ("sendPhoto", str(GROUP))
    png_size(photo)
    lines = caption.splitlines()
    on = sum(d[1] for d in DAYS) + 636
    off = sum(d[2] for d in DAYS) + 85
    assert lines[0] == f"{DEVICE}, the last 7 days ({KYIV}):"
    assert lines[1].startswith(f"ON {status_page.duration(on)}, OFF {status_page.duration(off)}, ")
    assert f"{sum(d[3] for d in DAYS) + 1} outages" in lines[1]
    assert len(lines) == 9 and lines[2].startswith("Tue 21 Oct 2025: ON 24 h, OFF 0 min")
    calls = meter.take()
    minutes_queries = [c for c in calls if c == ("Query", f"{PREFIX}-minutes")]
    # today's 12 hours since local midnight (+1 for the hour now), the registry, the watchdog's state
    assert len(minutes_queries) <= 12 + 1 + 2
    assert calls.count(("Query", f"{PREFIX}-days")) == 1


def test_outages_lists_the_last_ones_newest_first(bot, fake_api):
    assert bot.handle(channel_post("/outages"), NOW) == "answered"
    (method, chat, text, _photo), = fake_api.sent()
    assert (method, chat) == ("sendMessage", str(CHANNEL))
    assert text.splitlines() == [f"{DEVICE}: the last 2 outages ({KYIV}):", "27 Oct 08:00 – 08:45: 45 min",
                                 "26 Oct 23:30 – 27 Oct 00:40: 1 h 10 min"]


SCHEDULE_ICS = """BEGIN:VCALENDAR
VERSION:2.0
PRODID:-//blackout-monitor tests//EN
BEGIN:VEVENT
UID:possible-night@test
DTSTAMP:20251020T000000Z
DTSTART:20251026T210000Z
DTEND:20251026T230000Z
SUMMARY:Possible outage (group 3.1)
END:VEVENT
BEGIN:VEVENT
UID:morning@test
DTSTAMP:20251020T000000Z
DTSTART:20251027T053000Z
DTEND:20251027T080000Z
SUMMARY:Outage (group 3.1)
END:VEVENT
END:VCALENDAR
"""


def plan_runs(photo):
    """Rows of the picture holding a run of 20+ pixels in the schedule band's exact colour."""
    import io

    import matplotlib.image

    pixels = (matplotlib.image.imread(io.BytesIO(photo), format="png")[:, :, :3] * 255).round().astype(int)
    plan = tuple(int(status_page.PLAN_COLOUR[i:i + 2], 16) for i in (1, 3, 5))
    rows = 0
    for row in pixels:
        run = best = 0
        for pixel in row:
            run = run + 1 if tuple(pixel) == plan else 0
            best = max(best, run)
        rows += best >= 20
    return rows


def test_the_schedule_beside_each_outage_and_under_todays_timeline(cloud, bot_config, fake_api, tmp_path):
    """A feed (a file here) with a possible window over the night's outage and a definite one
    (07:30-10:00 Kyiv, 05:30-08:00Z) over the morning's: /outages says which, /today draws the band."""
    client, _meter = cloud
    feed = tmp_path / "group-3.1.ics"
    feed.write_text(SCHEDULE_ICS)
    config = {**bot_config, "schedule_ics": [str(feed)], "schedule_possible": utils.SCHEDULE_POSSIBLE,
              "schedule_cache": str(tmp_path / "cache")}
    bot = telegram_bot.Bot(config, lambda: client)
    assert bot.handle(channel_post("/outages"), NOW) == "answered"
    (_method, _chat, text, _photo), = fake_api.sent()
    assert text.splitlines()[1:] == ["27 Oct 08:00 – 08:45: 45 min (scheduled 27 Oct 07:30–10:00)",
                                     "26 Oct 23:30 – 27 Oct 00:40: 1 h 10 min (in a possible outage 26 Oct 23:00–27 Oct 01:00)"]
    assert bot.handle(private_message("/today"), NOW) == "answered"
    (_method, _chat, caption, with_band) = fake_api.sent()[-1]
    assert "27 Oct 08:00 – 08:45: 45 min (scheduled 27 Oct 07:30–10:00)" in caption.splitlines()
    plain = telegram_bot.Bot(bot_config, lambda: client)
    assert plain.handle(private_message("/today"), NOW) == "answered"
    (_method, _chat, _caption, without) = fake_api.sent()[-1]
    assert plan_runs(with_band) > 0 and plan_runs(without) == 0


@pytest.mark.parametrize("config_change, expected", [
    ({}, f"{DEVICE}: no status page is configured (status_pages in config.toml)."),
    ({"status_page_id": "Zq3xY7-abcdefghijklmnop"}, f"{DEVICE}: a page id is set, but not where the page is served"),
    ({"status_pages": {DEVICE: "Zq3xY7-abcdefghijklmnop"}, "status_page_url": "https://abc.lambda-url.eu-central-1.on.aws"},
     f"{DEVICE}: https://abc.lambda-url.eu-central-1.on.aws/Zq3xY7-abcdefghijklmnop/"),
])
def test_page_gives_the_link_or_says_why_not(bot, fake_api, cloud, config_change, expected):
    bot.config.update(config_change)
    assert bot.handle(private_message("/page"), NOW) == "answered"
    (_method, _chat, text, _photo), = fake_api.sent()
    assert text.startswith(expected)
    assert cloud[1].take() == []  # no DynamoDB request


def test_help_lists_every_command(bot, fake_api):
    bot.handle(private_message(f"/help@{BOT_USERNAME}"), NOW)
    (_method, _chat, text, _photo), = fake_api.sent()
    assert [line.split(" ")[0] for line in text.splitlines()[1:]] == [f"/{name}" for name in telegram_bot.COMMANDS]


def test_a_picture_that_cant_be_drawn_is_sent_as_text(bot, fake_api, monkeypatch, caplog):
    def broken(view):
        raise ImportError("No module named 'matplotlib'")

    monkeypatch.setattr(telegram_bot, "draw_today", broken)
    assert bot.handle(private_message("/today"), NOW) == "answered"
    (method, _chat, text, photo), = fake_api.sent()
    assert (method, photo) == ("sendMessage", None) and "27 Oct 08:00 – 08:45: 45 min" in text
    assert "no picture for /today (ImportError" in caplog.text


# --- who is answered, and what is ignored ---------------------------------------------------------

@pytest.mark.parametrize("update, outcome", [
    (edited_message("/status"), "ignored"),
    (callback_query(), "ignored"),
    ({"update_id": 5, "my_chat_member": {"chat": {"id": OWNER, "type": "private"}}}, "ignored"),
    (private_message("hello"), "ignored"),
    (group_message("/status@some_other_bot"), "ignored"),
    (group_message("/weather"), "ignored"),       # another bot's command in a group: not ours to answer
    ([1, 2], "ignored"),
])
def test_what_is_not_a_command_for_us_gets_no_answer(bot, fake_api, cloud, update, outcome):
    assert bot.handle(update, NOW) == outcome
    assert fake_api.sent() == []
    assert cloud[1].take() == []


@pytest.mark.parametrize("text, reply", [
    ("/status now please", "/status takes no arguments."),
    ("/weather", "I don't know /weather."),
])
def test_a_command_with_arguments_or_unknown_gets_the_help(bot, fake_api, cloud, text, reply):
    assert bot.handle(private_message(text), NOW) == "answered"
    (_method, _chat, answer, _photo), = fake_api.sent()
    assert answer.startswith(reply) and "/week" in answer
    assert cloud[1].take() == []


def test_strangers_get_no_answer_and_one_log_line_each(bot, fake_api, cloud, caplog):
    caplog.set_level(logging.INFO, "telegram_bot")
    updates = [private_message("/status", 1, STRANGER), private_message("/week", 2, STRANGER),
               group_message("/status", 3, -100555), channel_post("/today", 4, -100777), private_message("hi", 5, STRANGER)]
    assert [bot.handle(update, NOW) for update in updates] == ["refused"] * 5
    assert fake_api.sent() == [] and cloud[1].take() == []
    refusals = [r.getMessage() for r in caplog.records if "refused" in r.getMessage()]
    assert len(refusals) == 3 and all("not in telegram_chat_id" in line for line in refusals)
    assert TOKEN not in caplog.text


def test_a_channel_named_by_its_username_is_answered(bot, fake_api):
    bot.config["telegram_chat_id"] = "@power_at_home"
    update = channel_post("/help")
    update["channel_post"]["chat"]["username"] = "power_at_home"
    assert bot.handle(update, NOW) == "answered"
    assert bot.handle(channel_post("/help", 2, -1004444), NOW) == "refused"


# --- the webhook: a function URL's event (payload 2.0) --------------------------------------------

def function_url_event(body, secret=SECRET, path="/telegram", method="POST", base64_body=False):
    headers = {"content-type": "application/json", "host": "abc.lambda-url.eu-central-1.on.aws",
               "x-forwarded-for": "91.108.6.1"}
    if secret is not None:
        headers["x-telegram-bot-api-secret-token"] = secret
    raw = body if isinstance(body, (str, bytes)) else json.dumps(body)
    raw = raw.encode() if isinstance(raw, str) else raw
    return {"version": "2.0", "routeKey": "$default", "rawPath": path, "rawQueryString": "", "headers": headers,
            "requestContext": {"accountId": "anonymous", "apiId": "abc", "domainName": headers["host"],
                               "http": {"method": method, "path": path, "protocol": "HTTP/1.1",
                                        "sourceIp": "91.108.6.1", "userAgent": ""},
                               "requestId": str(uuid.uuid4()), "stage": "$default", "timeEpoch": 1761559200000},
            "body": base64.b64encode(raw).decode() if base64_body else raw.decode("utf-8", "replace"),
            "isBase64Encoded": base64_body}


@pytest.fixture
def lambda_env(cloud, bot_config, monkeypatch):
    """The handler's environment as the template sets it, the clock at NOW."""
    monkeypatch.setattr(telegram_bot, "_WARM", {})
    monkeypatch.setattr(telegram_bot, "utc_now", lambda: NOW)
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    for key, value in {"TELEGRAM_TOKEN": TOKEN, "TELEGRAM_CHAT_ID": f"{OWNER} {GROUP}", "TELEGRAM_API_URL":
                       bot_config["telegram_api_url"], "TELEGRAM_WEBHOOK_SECRET": SECRET, "WATCH": DEVICE,
                       "TABLE_PREFIX": PREFIX, "TIMEZONE": KYIV}.items():
        monkeypatch.setenv(f"BLACKOUT_{key}", value)
    cloud[1].take()


def test_the_handler_answers_an_update_with_the_secret(lambda_env, fake_api, caplog):
    answer = telegram_bot.handler(function_url_event(private_message("/status")), None)
    assert answer["statusCode"] == 200
    (method, chat, text, _photo), = fake_api.sent()
    assert (method, chat) == ("sendMessage", str(OWNER)) and text.startswith(f"{DEVICE}: Power ON")
    answer = telegram_bot.handler(function_url_event(group_message("/today@" + BOT_USERNAME), base64_body=True), None)
    assert answer["statusCode"] == 200 and fake_api.sent()[-1][:2] == ("sendPhoto", str(GROUP))
    assert SECRET not in caplog.text and TOKEN.split(":")[1] not in caplog.text


@pytest.mark.parametrize("secret", [None, "", "webhook-secret-0123456789abcdeX", SECRET[:-1], SECRET + "0"])
def test_the_handler_refuses_a_wrong_secret(lambda_env, fake_api, cloud, caplog, secret):
    answer = telegram_bot.handler(function_url_event(private_message("/status"), secret=secret), None)
    assert answer["statusCode"] == 403
    assert fake_api.calls == [] and cloud[1].take() == []
    assert SECRET not in caplog.text and "Traceback" not in caplog.text


@pytest.mark.parametrize("event_change, status", [
    ({"rawPath": "/"}, 404), ({"rawPath": "/telegram/"}, 404),
    ({"requestContext": {"http": {"method": "GET"}}}, 404),
    ({"body": "{not json"}, 200), ({"body": "[]"}, 200), ({"body": '"text"'}, 200),
    ({"body": "A" * 10_000_000}, 200),
    ({"body": "!!!not base64", "isBase64Encoded": True}, 200),
    ({"body": json.dumps(edited_message("/status"))}, 200),
    ({"body": json.dumps(callback_query())}, 200),
    ({"body": json.dumps(private_message("/status", chat=STRANGER))}, 200),
])
def test_bad_requests_get_an_answer_at_once_and_no_reply(lambda_env, fake_api, cloud, caplog, event_change, status):
    event = {**function_url_event(private_message("/status")), **event_change}
    answer = telegram_bot.handler(event, None)
    assert answer["statusCode"] == status
    assert fake_api.sent() == [] and cloud[1].take() == []
    assert "Traceback" not in caplog.text


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=st.one_of(st.binary(max_size=300).map(lambda b: b.decode("latin-1")),
                      st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                                   lambda inner: st.lists(inner, max_size=4)
                                   | st.dictionaries(st.sampled_from(["update_id", "message", "chat", "id", "text",
                                                                      "channel_post", "type"]), inner, max_size=4),
                                   max_leaves=12).map(json.dumps)))
def test_hostile_bodies_never_break_the_handler(lambda_env, fake_api, body):
    answer = telegram_bot.handler(function_url_event(body), None)
    assert answer["statusCode"] == 200
    assert fake_api.sent() == []


# --- configuration --------------------------------------------------------------------------------

@pytest.mark.parametrize("value, expected", [
    ("42", "42"), ("42 -1001234567890", ("42", "-1001234567890")), ([42, "@power_home"], ("42", "@power_home")),
    ([42], "42"), ("42 42", "42"),
])
def test_telegram_chat_id_takes_one_chat_or_several(value, expected):
    assert utils.KEYS["telegram_chat_id"][0]("telegram_chat_id", value) == expected


def test_each_listed_chat_is_a_notification_channel_of_its_own():
    import channels

    one = channels.channels_from_config({"telegram_token": TOKEN, "telegram_chat_id": "42"})
    two = channels.channels_from_config({"telegram_token": TOKEN, "telegram_chat_id": ("42", "-100123")})
    assert [c.chat_id for c in two] == ["42", "-100123"]
    assert channels.channel_id(one[0]) == channels.channel_id(two[0])  # the single chat's channel id is kept


@pytest.mark.parametrize("args, env, message", [
    (["--bogus"], {}, "unrecognized arguments: --bogus"),
    ([], {}, "say what to do"),
    (["--poll"], {}, "telegram_token is not set"),
    (["--poll"], {"BLACKOUT_TELEGRAM_TOKEN": TOKEN}, "telegram_chat_id is not set"),
    (["--poll"], {"BLACKOUT_TELEGRAM_TOKEN": TOKEN, "BLACKOUT_TELEGRAM_CHAT_ID": "42 nope"}, "is not a Telegram chat id"),
    (["set-webhook", "--url", "https://x.example"], {"BLACKOUT_TELEGRAM_TOKEN": TOKEN, "BLACKOUT_TELEGRAM_CHAT_ID": "42"},
     "telegram_webhook_secret is not set"),
    (["set-webhook", "--url", "https://x.example"], {"BLACKOUT_TELEGRAM_TOKEN": TOKEN, "BLACKOUT_TELEGRAM_CHAT_ID": "42",
                                                      "BLACKOUT_TELEGRAM_WEBHOOK_SECRET": "short-but-Secret1"[:9]},
     "_WEBHOOK_SECRET must be 16-256"),
])
def test_bad_flags_and_config_are_one_line(server_env, args, env, message):
    result = run_script("telegram_bot.py", *args, env={**server_env, **env}, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith("Error: ") and message in result.stderr and len(result.stderr.splitlines()) == 1
    assert "short-but" not in result.stderr and TOKEN.split(":")[1] not in result.stderr


def test_set_webhook_registers_the_url_with_the_secret(server_env, fake_api):
    env = {**server_env, "BLACKOUT_TELEGRAM_TOKEN": TOKEN, "BLACKOUT_TELEGRAM_CHAT_ID": str(OWNER),
           "BLACKOUT_TELEGRAM_API_URL": fake_api.url, "BLACKOUT_TELEGRAM_WEBHOOK_SECRET": SECRET}
    result = run_script("telegram_bot.py", "set-webhook", "--url", "https://abc.lambda-url.eu-central-1.on.aws/",
                        env=env, timeout=120)
    assert result.returncode == 0, result.stderr
    (method, body), = [call for call in fake_api.calls if call[0] == "setWebhook"]
    assert body == {"url": "https://abc.lambda-url.eu-central-1.on.aws/telegram", "secret_token": SECRET,
                    "allowed_updates": ["message", "channel_post"], "drop_pending_updates": False}
    assert json.loads(result.stdout)["url"] == body["url"]
    assert SECRET not in result.stdout + result.stderr and TOKEN.split(":")[1] not in result.stdout


# --- --poll, as cron runs it, against moto's server -----------------------------------------------

def test_poll_answers_each_update_once(server_env, server_client, fake_api, tmp_path):
    now = dt.datetime.now(dt.timezone.utc).replace(second=0, microsecond=0)
    outage = [(now - dt.timedelta(minutes=50), now - dt.timedelta(minutes=20))]
    dynamo.put_all(server_client, seed_items(dynamo.table_names(server_env["BLACKOUT_TABLE_PREFIX"]),
                                             now - dt.timedelta(hours=1), now, outage))
    env = {**server_env, "BLACKOUT_TELEGRAM_TOKEN": TOKEN, "BLACKOUT_TELEGRAM_CHAT_ID": f"{OWNER} {GROUP}",
           "BLACKOUT_TELEGRAM_API_URL": fake_api.url, "BLACKOUT_DEVICE": DEVICE, "BLACKOUT_TIMEZONE": KYIV}
    state = tmp_path / "state"
    fake_api.updates = [private_message("/status", 500), private_message("/outages", 501, STRANGER),
                        edited_message("/status", 502), group_message(f"/outages@{BOT_USERNAME}", 503)]
    first = run_script("telegram_bot.py", "--poll", "--once", "--state-dir", state, env=env, timeout=60)
    assert (first.returncode, first.stdout) == (0, ""), first.stderr
    sent = fake_api.sent()
    assert [(method, chat) for method, chat, _text, _photo in sent] == [("sendMessage", str(OWNER)),
                                                                       ("sendMessage", str(GROUP))]
    assert sent[0][2].startswith(f"{DEVICE}: Power ON\nsince ")
    assert sent[1][2].splitlines()[0] == f"{DEVICE}: the last 1 outage ({KYIV}):"
    assert sent[1][2].splitlines()[1].endswith(": 30 min")
    assert json.loads((state / "telegram-offset.json").read_text()) == {"offset": 504, "refused": [str(STRANGER)]}
    # Telegram hands the same updates again (the offset never reached it): none is answered twice
    fake_api.updates, fake_api.forget_confirmed = [private_message("/status", 503), private_message("/help", 504)], False
    second = run_script("telegram_bot.py", "--poll", "--once", "--state-dir", state, env=env, timeout=60)
    assert (second.returncode, second.stdout) == (0, ""), second.stderr
    assert [(method, text.splitlines()[0]) for method, _chat, text, _photo in fake_api.sent()[2:]] == [
        ("sendMessage", "I answer about the power:")]
    offsets = [body["offset"] for method, body in fake_api.calls if method == "getUpdates"]
    assert offsets == [0, 504, 504, 505]
    assert "refused" in first.stderr and "refused" not in second.stderr  # each stranger logged once


# --- the template ---------------------------------------------------------------------------------

def test_the_template_serves_the_bot_read_only_with_its_secrets_from_ssm():
    import policy
    from cfnlint.decode import cfn_yaml

    from tests.test_infra import TEMPLATE, resolve

    template = cfn_yaml.load(str(TEMPLATE))
    resources = template["Resources"]
    function = resources["TelegramBotFunction"]["Properties"]
    assert function["Handler"] == "telegram_bot.handler"
    variables = function["Environment"]["Variables"]
    assert not {"BLACKOUT_TELEGRAM_TOKEN", "BLACKOUT_TELEGRAM_CHAT_ID", "BLACKOUT_TELEGRAM_WEBHOOK_SECRET"} & set(variables)
    assert variables["BLACKOUT_SECRETS_PARAMETER"] == {"Ref": "SecretsParameterName"}
    assert set(variables) - {"BLACKOUT_STATUS_PAGES", "BLACKOUT_STATUS_PAGE_URL"} <= {f"BLACKOUT_{k.upper()}" for k in telegram_bot.KEYS}
    (role_policy,) = resources["TelegramBotRole"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in role_policy["PolicyDocument"]["Statement"]}
    expected = {s["Sid"]: s for s in policy.status_page_policy_document({"table_prefix": "home"})["Statement"]}
    for sid, statement in expected.items():
        assert resolve(statements[sid], template) == statement
    assert set(statements) - set(expected) == {"Secrets", "Logs"}
    assert statements["Secrets"]["Action"] == ["ssm:GetParameter"]
    assert resources["TelegramBotUrl"]["Properties"]["AuthType"] == "NONE"  # the secret token is the key
    makefile = (PROJECT_DIR / "Makefile").read_text()
    assert "telegram_bot.py" in next(line for line in makefile.splitlines() if line.startswith("LAMBDA_MODULES :="))
