"""status_page.py: a week of known readings in Kyiv, read from DynamoDB (mock_aws), rendered,
served by the Lambda handler, and looked at in headless Chromium at a phone's 360 px.

The week: power ON, except an outage across local midnight (25 Oct 23:30 to 26 Oct 00:40,
70 min), the Pi down on 24 Oct 10:00-12:00 (no readings), the 26th is 25 hours long (the
clocks go back), and an outage today 08:00-08:45. The page is made at 27 Oct 12:00 (EET).
"""

import datetime as dt
import json
import math
import os
import re
import shutil
from pathlib import Path
from unittest import mock

import pytest

import dynamo
import status_page
from filebuffer import Reading
from tests.conftest import FAKE_CREDENTIALS, PROJECT_DIR

KYIV = "Europe/Kyiv"
DEVICE = "kyiv_rpi"
PREFIX = "page-test"
PAGE_ID = "Zq3xY7-abcdefghijklmnop"
ARTIFACTS = PROJECT_DIR / "test-artifacts" / "status-page"


def local(*fields):
    return dt.datetime(*fields, tzinfo=status_page.zone(KYIV)).astimezone(dt.timezone.utc)


NOW = local(2025, 10, 27, 12, 0)
WEEK_START = local(2025, 10, 21)
OUTAGES = [(local(2025, 10, 25, 23, 30), local(2025, 10, 26, 0, 40)), (local(2025, 10, 27, 8, 0), local(2025, 10, 27, 8, 45))]
PI_DOWN = (local(2025, 10, 24, 10, 0), local(2025, 10, 24, 12, 0))


def pin_value(minute):
    return 0 if any(start <= minute < end for start, end in OUTAGES) else 1


def week_items(tables):
    items, minute = [], WEEK_START - dt.timedelta(hours=1)
    while minute <= NOW:
        if not PI_DOWN[0] <= minute < PI_DOWN[1]:
            ts = minute + dt.timedelta(seconds=3)
            items.append((tables["minutes"], dynamo.minute_item(Reading(DEVICE, "4", ts, {"reading": pin_value(minute)}))))
            if minute >= NOW - dt.timedelta(hours=49):
                values = {"temperature_c": 20 + 2 * math.sin(minute.timestamp() / 20000), "humidity_pct": 55.0,
                          "pressure_hpa": 1000.0}
                items.append((tables["minutes"], dynamo.minute_item(Reading(DEVICE, "bme280", ts, values))))
        minute += dt.timedelta(minutes=1)
    for sensor in ("4", "bme280"):
        pk, sk = dynamo.registry_key(DEVICE, sensor)
        items.append((tables["minutes"], {"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": DEVICE}, "sensor": {"S": sensor}}))
    zone = status_page.zone(KYIV)
    for day, on, off, outages in ((dt.date(2025, 9, 15), 1200, 240, 2), (dt.date(2025, 8, 1), 1440, 0, 0)):
        start, _end = status_page.day_window(day, zone)
        stats = {"count": on + off, "expected": 1440, "unknown": 1440 - on - off, "on": on, "off": off,
                 "uptime": on / (on + off), "outages": outages, "longest_outage_minutes": 120,
                 **dynamo.day_attributes(start, zone)}
        items.append((tables["days"], dynamo.day_item(DEVICE, "4", day, stats, NOW)))
    # a broken days item (a stolen key wrote it): skipped with a log line, the page still made
    bad = dynamo.day_item(DEVICE, "4", dt.date(2025, 9, 16), {"on": "lots", "off": 0}, NOW)
    items.append((tables["days"], bad))
    return items


class Meter:
    """Requests and read units of every DynamoDB call made through a client (botocore hooks)."""

    def __init__(self, client):
        self.requests, self.units, self.operations = 0, 0.0, {}
        client.meta.events.register("after-call.dynamodb", self.count)

    def count(self, http_response, parsed, model, **_kwargs):
        self.requests += 1
        self.operations[model.name] = self.operations.get(model.name, 0) + 1
        items = parsed.get("Items") or [item for items in parsed.get("Responses", {}).values() for item in items]
        size = sum(item_size(item) for item in items)
        consistent = model.name == "Query" and getattr(self, "_consistent", False)
        # DynamoDB bills a Query by the size read, rounded up to 4 KB: 0.5 unit each eventually consistent
        self.units += max(1, math.ceil(size / 4096)) * (1.0 if consistent else 0.5)


def item_size(item):
    """An item's size as DynamoDB counts it: attribute names plus values (numbers ~ digits/2 + 1)."""
    total = 0
    for name, value in item.items():
        (kind, raw), = value.items()
        total += len(name.encode()) + (len(raw.encode()) if kind == "S" else len(raw.lstrip("-").replace(".", "")) // 2 + 1)
    return total


@pytest.fixture(scope="module")
def week():
    """(client, meter, data) with the week's items in mock_aws; the mock stays on for the module."""
    from moto import mock_aws

    with mock.patch.dict(os.environ, FAKE_CREDENTIALS), mock_aws():
        client = dynamo.aws_client()
        dynamo.create_tables({"table_prefix": PREFIX, "retention_days": None}, client)
        dynamo.put_all(client, week_items(dynamo.table_names(PREFIX)))
        meter = Meter(client)
        config = {"device": DEVICE, "table_prefix": PREFIX, "timezone": KYIV, "silent_after": 5}
        data = status_page.gather(client, config, NOW)
        yield client, meter, data, config


@pytest.fixture(scope="module")
def built(week):
    _client, _meter, data, _config = week
    return status_page.build(data)


def test_now_json_tells_the_week(built):
    _page, document = built
    assert (document["device"], document["timezone"], document["state"]) == (DEVICE, KYIV, "on")
    assert document["as_of"] == "2025-10-27T12:00:00+02:00"
    assert document["since"] == "2025-10-27T08:45:00+02:00"
    assert document["last_reading"] == "2025-10-27T12:00:03+02:00"
    assert document["temperature_c"] is not None and document["humidity_pct"] == 55.0
    assert document["today"] == {"date": "2025-10-27", "on": 676, "off": 45, "unknown": 0, "outages": 1,
                                 "longest_outage_minutes": 45}
    assert [(o["start"], o["end"], o["minutes"]) for o in document["outages"]] == [
        ("2025-10-27T08:00:00+02:00", "2025-10-27T08:45:00+02:00", 45),
        ("2025-10-25T23:30:00+03:00", "2025-10-26T00:40:00+03:00", 70)]  # summer time until 04:00
    days = {day["date"]: day for day in document["days"]}
    assert len(document["days"]) == 90 and document["days"][-1]["date"] == "2025-10-27"
    assert days["2025-10-26"] == {"date": "2025-10-26", "on": 1460, "off": 40, "unknown": 0, "outages": 0,
                                  "uptime": round(1460 / 1500, 4)}  # 25 hours; the outage began the day before
    assert days["2025-10-25"]["outages"] == 1 and days["2025-10-25"]["off"] == 30
    assert days["2025-10-24"]["unknown"] == 120
    assert days["2025-09-15"]["outages"] == 2 and days["2025-09-15"]["off"] == 240  # from the days item
    assert days["2025-09-16"]["unknown"] == 1440  # the broken item was skipped
    assert days["2025-08-01"]["on"] == 1440


def test_a_view_reads_only_what_it_shows(week):
    """Requests and read units of one page view (written to BENCHMARKS.md)."""
    client, meter, data, config = week
    before = (meter.requests, meter.units)
    page, document = status_page.build(status_page.gather(client, config, NOW))
    requests, units = meter.requests - before[0], meter.units - before[1]
    import gzip

    sizes = [(len(text.encode()), len(gzip.compress(text.encode()))) for text in (page, json.dumps(document))]
    print(f"\nstatus page view: {requests} requests, {units:.1f} read units; index.html {sizes[0][0]} bytes "
          f"({sizes[0][1]} gzipped), now.json {sizes[1][0]} bytes ({sizes[1][1]} gzipped)")
    assert sizes[0][0] < 150_000  # a phone on a weak link during an outage
    # the registry, the watchdog's state, 4 months of days items, 7 days + 1 h of pin minutes, 48 h + 1 of room
    hours = (NOW - local(2025, 10, 21)) // dt.timedelta(hours=1) + 1
    assert requests == 1 + 1 + 4 + hours + 49
    assert set(meter.operations) == {"Query", "CreateTable", "DescribeTable", "BatchWriteItem", "DescribeTimeToLive"} \
        or set(meter.operations) == {"Query"}


def test_untrusted_strings_are_escaped(week):
    _client, _meter, data, _config = week
    view = status_page.summarise(data)
    view["device"], view["timezone"] = "<script>alert(1)</script>", "Europe/<b>"
    page = status_page.render_html(view)
    assert "<script>alert(1)" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<b>" not in page


def test_silent_device_shows_the_watchdogs_view(week):
    _client, _meter, data, _config = week
    later = NOW + dt.timedelta(minutes=40)
    silent = {**data, "now": later,
              "watchdog": {"phase": "silent", "silent_since": "2025-10-27T10:00:03+00:00", "silent_announced": True}}
    page, document = status_page.build(silent)
    assert document["state"] == "silent" and document["since"] == "2025-10-27T12:00:03+02:00"
    assert "No word from the Pi" in page and "Last word from the Pi: power was ON at 27 Oct 12:00" in page
    nothing = {**data, "sensors": [], "pin_minutes": [], "env_minutes": [], "days": [], "watchdog": None}
    assert status_page.build(nothing)[1]["state"] == "unknown"


# --- the Lambda function URL --------------------------------------------------------------------

def url_event(path, method="GET"):
    return {"version": "2.0", "rawPath": path, "requestContext": {"http": {"method": method, "path": path}}}


@pytest.mark.parametrize("path, status", [
    (f"/{PAGE_ID}/", 200), (f"/{PAGE_ID}/now.json", 200), (f"/{PAGE_ID}", 404), (f"/{PAGE_ID}/x", 404),
    ("/", 404), (f"/{PAGE_ID[:-1]}/", 404), (f"/{PAGE_ID}x/now.json", 404), ("/kyiv_rpi/", 404),
])
def test_handler_serves_only_known_page_ids(week, monkeypatch, path, status):
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BLACKOUT_CONFIG", os.devnull)
    monkeypatch.setenv("BLACKOUT_TABLE_PREFIX", PREFIX)
    monkeypatch.setenv("BLACKOUT_TIMEZONE", KYIV)
    monkeypatch.setenv("BLACKOUT_STATUS_PAGES", f"{DEVICE}={PAGE_ID} other_pi=AAAAAAAAAAAAAAAAAAAAAAAA")
    answer = status_page.handler(url_event(path), None)
    assert answer["statusCode"] == status
    if status == 200 and path.endswith("now.json"):
        document = json.loads(answer["body"])
        assert document["device"] == DEVICE and document["state"] == "silent"  # today: no reading for a year
        assert answer["headers"]["content-type"] == "application/json"
    elif status == 200:
        assert answer["body"].startswith("<!doctype html>") and PAGE_ID not in answer["body"]
        assert "default-src 'none'" in answer["headers"]["content-security-policy"]


def test_cli_writes_the_folder_and_makes_ids(week, monkeypatch, tmp_path, capsys):
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("BLACKOUT_CONFIG", os.devnull)
    argv = ["--device", DEVICE, "--table-prefix", PREFIX, "--timezone", KYIV, "--out", str(tmp_path / "page"),
            "--at", "2025-10-27T10:00"]
    assert status_page.run_cli(status_page.main, argv) == 0
    assert json.loads((tmp_path / "page" / "now.json").read_text())["since"] == "2025-10-27T08:45:00+02:00"
    assert (tmp_path / "page" / "index.html").read_text().startswith("<!doctype html>")
    assert status_page.run_cli(status_page.main, ["new-id"]) == 0
    first = capsys.readouterr().out.strip()
    assert status_page.run_cli(status_page.main, ["new-id"]) == 0
    assert re.fullmatch(r"[A-Za-z0-9_-]{24}", first) and capsys.readouterr().out.strip() != first
    assert status_page.run_cli(status_page.main, ["--device", DEVICE]) == 2
    assert "--out DIR is required" in capsys.readouterr().err


def test_page_id_config_errors_name_no_secret():
    import utils

    with pytest.raises(utils.ConfigError, match="is not a page id") as error:
        utils.load_config(None, ("status_pages",), {"BLACKOUT_CONFIG": os.devnull,
                                                    "BLACKOUT_STATUS_PAGES": "a=short-secret"})
    assert "short-secret" not in str(error.value)


# --- the outage schedule under the timelines (fast: a view made from data, no DynamoDB) ---------

SCHEDULED = (local(2025, 10, 26, 18, 0), local(2025, 10, 26, 22, 0), False)   # stored with the 26th's item
POSSIBLE_NOW = (local(2025, 10, 27, 10, 0), local(2025, 10, 27, 12, 30), True)  # the live feed, today
LATER = [(local(2025, 10, 27, h, 0), local(2025, 10, 27, h + 1, 0), False) for h in (14, 15, 16, 17)]  # hour by hour
SCHEDULE_OUTAGES = [(local(2025, 10, 26, 18, 5), local(2025, 10, 26, 21, 40)),   # scheduled
                    (local(2025, 10, 27, 8, 0), local(2025, 10, 27, 8, 45)),     # not
                    (local(2025, 10, 27, 10, 30), local(2025, 10, 27, 11, 0))]   # in the possible window


def schedule_data(live=None, stored=(SCHEDULED,)):
    """Two days of pin readings (26 and 27 Oct) with three outages, as `gather` returns them."""
    minutes, minute = [], local(2025, 10, 26, 0, 0)
    while minute <= NOW:
        value = 0 if any(start <= minute < end for start, end in SCHEDULE_OUTAGES) else 1
        minutes.append((minute, value, minute + dt.timedelta(seconds=3)))
        minute += dt.timedelta(minutes=1)
    days = [] if stored is None else [{"date": dt.date(2025, 10, 26), "on": 1285, "off": 215, "unknown": 0,
                                       "outages": 1, "longest_outage_minutes": 215, "expected": 1500,
                                       "windows": list(stored)}]
    return {"device": DEVICE, "timezone": KYIV, "now": NOW, "silent_after": 5, "sensors": ["4"], "pin": "4",
            "pin_minutes": minutes, "days": days, "env_minutes": [], "watchdog": None, "windows": live}


def test_schedule_is_drawn_under_the_timelines_and_told_beside_each_outage():
    page, document = status_page.build(schedule_data(live=[POSSIBLE_NOW] + LATER))
    # a band under each day whose schedule is known: definite windows fill it, possible ones are thinner
    bands = re.findall(r'<div class="timeline" data-date="([\d-]+)".*?(?:<div class="plan">(.*?)</div>|<div class="ticks")', page)
    known = {date: band for date, band in bands if band}
    assert set(known) == {"2025-10-26", "2025-10-27"}  # the other days: no item, nothing in the feed
    assert re.findall(r'data-kind="(\w+)" data-minutes="(\d+)"', known["2025-10-26"]) == [("definite", "240")]
    assert re.findall(r'data-kind="(\w+)" data-minutes="(\d+)"', known["2025-10-27"]) == [
        ("possible", "150"), ("definite", "240")]  # the hourly events joined
    assert 'aria-label="Schedule: scheduled outage 18:00–22:00"' in known["2025-10-26"]
    assert 'y="0.3" width="150" height="0.4"' in known["2025-10-27"]  # not by shade alone
    assert "Schedule: possible outage 10:00–12:30; scheduled outage 14:00–18:00</p>" in page
    assert "scheduled outage (the band below)" in page  # the legend, only with a schedule
    notes = re.findall(r'<span class="sched" data-scheduled="(\w+)">([^<]*)</span>', page)
    assert notes == [("possible", "in a possible outage 27 Oct 10:00–12:30"), ("no", "not scheduled"),
                     ("yes", "scheduled 26 Oct 18:00–22:00")]
    assert '<p id="schedule-now">Possible outage now: 27 Oct 10:00–12:30</p>' in page
    # now.json: the window now and the next one (the hourly events joined), each outage's
    assert document["schedule"] == {
        "current": {"start": "2025-10-27T10:00:00+02:00", "end": "2025-10-27T12:30:00+02:00", "possible": True},
        "next": {"start": "2025-10-27T14:00:00+02:00", "end": "2025-10-27T18:00:00+02:00", "possible": False}}
    assert [(o["start"], o["scheduled"], o["window"]) for o in document["outages"]] == [
        ("2025-10-27T10:30:00+02:00", True, document["schedule"]["current"]),
        ("2025-10-27T08:00:00+02:00", False, None),
        ("2025-10-26T18:05:00+02:00", True,
         {"start": "2025-10-26T18:00:00+02:00", "end": "2025-10-26T22:00:00+02:00", "possible": False})]


def test_without_a_schedule_the_page_and_now_json_are_unchanged():
    page, document = status_page.build(schedule_data(live=None, stored=None))
    assert 'class="plan"' not in page and 'class="sched"' not in page and "schedule-now" not in page
    assert "scheduled outage" not in page
    assert "schedule" not in document and all(set(o) == {"start", "end", "minutes"} for o in document["outages"])


def test_next_window_when_none_is_in_force():
    data = schedule_data(live=LATER, stored=None)
    page, document = status_page.build(data)
    assert document["schedule"]["current"] is None and document["schedule"]["next"]["start"] == "2025-10-27T14:00:00+02:00"
    assert '<p id="schedule-now">Next scheduled outage: 27 Oct 14:00–18:00</p>' in page
    # the 26th has no stored windows and the feed none then: unknown, so no "not scheduled" claim
    assert [o.get("scheduled") for o in document["outages"]] == [False, False, None]


@pytest.mark.parametrize("schedule, possible, kept", [
    ([["2025-10-26T18:00:00+02:00", "2025-10-26T22:00:00+02:00"]], None, 1),
    ([["2025-10-26T18:00:00+02:00", "2025-10-26T22:00:00+02:00"]], [["2025-10-26T08:00:00+00:00", "2025-10-26T09:00:00+00:00"]], 2),
    ([["2025-10-26T18:00:00", "2025-10-26T22:00:00"]], None, 0),              # no offset
    ([["2025-10-26T22:00:00+02:00", "2025-10-26T18:00:00+02:00"]], None, 0),  # ends before it starts
    ([["2025-10-01T00:00:00+02:00", "2025-10-26T00:00:00+02:00"]], None, 0),  # weeks long
    ([["<script>", "x"], ["2025-10-26T18:00:00+02:00"], 7, None], None, 0),
    ("18:00-22:00", None, None),                                              # not a list: none known
    ([["2025-10-26T18:00:00+02:00", "2025-10-26T22:00:00+02:00"]], "x", None),
])
def test_stored_windows_are_untrusted(schedule, possible, kept, caplog):
    item = {"pk": "device#kyiv_rpi#sensor#4#month#2025-10", "sk": "day#2025-10-26", "schedule": schedule}
    if possible is not None:
        item["schedule_possible"] = possible
    with caplog.at_level("WARNING"):
        windows = status_page.stored_windows(item)
    assert (None if windows is None else len(windows)) == kept
    if kept != len(schedule if isinstance(schedule, list) else []) + len(possible if isinstance(possible, list) else []):
        assert "day#2025-10-26" in caplog.text  # each skip says which item
    assert status_page.stored_windows({"pk": "p", "sk": "s"}) is None  # computed without a schedule


def test_hostile_stored_windows_never_break_the_page():
    """Whatever a Pi wrote as `schedule`, the page is made: stored_windows gives valid windows or None."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    times = st.datetimes(min_value=dt.datetime(1, 1, 2), max_value=dt.datetime(9999, 12, 30),
                         timezones=st.sampled_from([dt.timezone.utc, dt.timezone(dt.timedelta(hours=14))])).map(
                             lambda t: t.isoformat())
    value = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=30) | times,
                         lambda inner: st.lists(inner, max_size=4), max_leaves=12)
    pairs = st.lists(st.lists(times | st.text(max_size=40), min_size=2, max_size=2) | value, max_size=6)

    @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(pairs | value, pairs | value)
    def hostile(schedule, possible):
        item = {"pk": "device#kyiv_rpi#sensor#4#month#2025-10", "sk": "day#2025-10-26", "schedule": schedule,
                "schedule_possible": possible}
        windows = status_page.stored_windows(item)
        assert windows is None or all(
            start.tzinfo is not None and dt.timedelta(0) < end - start <= status_page.MAX_WINDOW and kind in (False, True)
            for start, end, kind in windows)
        data = schedule_data(live=None, stored=windows or [])
        page, document = status_page.build(data)
        assert page.startswith("<!doctype html>") and json.dumps(document)

    hostile()


def test_a_broken_schedule_never_costs_the_page(monkeypatch, caplog):
    import schedule

    def broken(*args, **kwargs):
        raise RuntimeError("feed cache corrupt")

    monkeypatch.setattr(schedule, "windows", broken, raising=False)
    with caplog.at_level("WARNING"):
        assert status_page.live_windows({"schedule_ics": ["feed.ics"]}, NOW, NOW, NOW) is None
    assert "feed cache corrupt" in caplog.text
    assert status_page.live_windows({"schedule_ics": None}, NOW, NOW, NOW) is None
    calls = []
    monkeypatch.setattr(schedule, "windows", lambda config, start, end, *, fetch=False, now=None: calls.append(fetch) or [
        schedule.Window(POSSIBLE_NOW[0], POSSIBLE_NOW[1], True, "Можливе відключення")], raising=False)
    assert status_page.live_windows({"schedule_ics": ["feed.ics"]}, NOW, NOW, NOW) == [POSSIBLE_NOW]
    assert calls == [True]


# --- in a real browser ------------------------------------------------------------------------

@pytest.fixture(scope="module")
def browser():
    chromedriver = shutil.which("chromedriver")
    if not chromedriver:
        pytest.fail("chromedriver is missing: apt-get install chromium chromium-driver (.ci/run does it)")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu",
                     "--window-size=360,800", "--hide-scrollbars"):
        options.add_argument(argument)
    driver = webdriver.Chrome(service=Service(executable_path=chromedriver), options=options)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def page_folder(built, tmp_path_factory):
    page, document = built
    folder = tmp_path_factory.mktemp("page")
    return status_page.write_page(folder, page, document)


def open_at(driver, url, width):
    driver.set_window_size(width, 800)
    # the layout viewport of a headless window: make it exactly `width` CSS pixels
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": 800, "deviceScaleFactor": 1, "mobile": width < 500})
    driver.get(url)


def screenshot(driver, name):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    height = driver.execute_script("return document.documentElement.scrollHeight")
    width = driver.execute_script("return document.documentElement.clientWidth")
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride",
                           {"width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 500})
    driver.save_screenshot(str(ARTIFACTS / name))


def test_phone_sees_the_now_card_timelines_and_outages(browser, page_folder):
    from selenium.webdriver.common.by import By

    open_at(browser, page_folder.as_uri(), 360)
    assert browser.find_element(By.ID, "state").text == "Power ON"
    assert browser.find_element(By.ID, "since").text == "since 27 Oct 08:45 (3 h 15 min)"
    assert browser.find_element(By.ID, "room").text.startswith("Room: ")
    assert browser.find_element(By.ID, "today").text.startswith("Today: ON 11 h 16 min, OFF 45 min, no reading 0 min; 1 outage")
    rows = browser.find_elements(By.CSS_SELECTOR, "#outages tr.outage")
    assert [row.find_element(By.CSS_SELECTOR, ".duration").text for row in rows] == ["45 min", "1 h 10 min"]
    assert rows[1].text.startswith("25 Oct 23:30") and "26 Oct 00:40" in rows[1].text

    def segments(date):
        timeline = browser.find_element(By.CSS_SELECTOR, f'.timeline[data-date="{date}"]')
        return int(timeline.get_attribute("data-minutes")), [
            (rect.get_attribute("data-kind"), int(rect.get_attribute("data-minutes")))
            for rect in timeline.find_elements(By.CSS_SELECTOR, "rect.seg")]

    assert segments("2025-10-26") == (1500, [("off", 40), ("on", 1460)])  # 25 hours
    assert segments("2025-10-25") == (1440, [("on", 1410), ("off", 30)])
    assert segments("2025-10-24") == (1440, [("on", 600), ("none", 120), ("on", 720)])
    assert segments("2025-10-27") == (1440, [("on", 480), ("off", 45), ("on", 196)])  # up to 12:00 inclusive
    assert len(browser.find_elements(By.CSS_SELECTOR, ".timeline")) == 7
    assert len(browser.find_elements(By.CSS_SELECTOR, ".days g.day")) == 90
    # the DST day says so in its heading, for people and screen readers
    assert "25 h: the clocks changed" in browser.find_element(By.CSS_SELECTOR, '.timeline[data-date="2025-10-26"] h3').text
    # no horizontal scroll on a phone
    assert browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    assert browser.execute_script("return document.documentElement.clientWidth") == 360
    # nothing from another host: every resource loaded and every link is this file's own
    resources = browser.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert all(name.startswith(("file:", "data:")) for name in resources), resources
    urls = browser.execute_script(
        "return [...document.querySelectorAll('[src],[href],[action]')].map(e => e.getAttribute('src') || "
        "e.getAttribute('href') || e.getAttribute('action'))")
    assert urls and all(url.startswith("#") or url == "now.json" for url in urls), urls
    screenshot(browser, "phone-360.png")


def test_desktop_and_scripts_off(browser, page_folder):
    from selenium.webdriver.common.by import By

    open_at(browser, page_folder.as_uri(), 1280)
    assert browser.find_element(By.ID, "state").text == "Power ON"
    assert browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(browser, "desktop-1280.png")
    # scripts off: the same text (the script only refreshes the card, and not from file://)
    browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": True})
    try:
        browser.get(page_folder.as_uri())
        assert browser.find_element(By.ID, "state").text == "Power ON"
        assert len(browser.find_elements(By.CSS_SELECTOR, "#outages tr.outage")) == 2
    finally:
        browser.execute_cdp_cmd("Emulation.setScriptExecutionDisabled", {"value": False})


def test_silent_page_on_a_phone(browser, week, tmp_path):
    from selenium.webdriver.common.by import By

    _client, _meter, data, _config = week
    silent = {**data, "now": NOW + dt.timedelta(minutes=40),
              "watchdog": {"phase": "silent", "silent_since": "2025-10-27T10:00:03+00:00", "silent_announced": True}}
    page = status_page.write_page(tmp_path, *status_page.build(silent))
    open_at(browser, page.as_uri(), 360)
    assert browser.find_element(By.ID, "state").text == "No word from the Pi"
    assert browser.find_element(By.ID, "since").text.startswith("silent since 27 Oct 12:00 (39 min)")
    assert browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(browser, "phone-360-silent.png")


def test_schedule_band_on_a_phone(browser, tmp_path):
    from selenium.webdriver.common.by import By

    page = status_page.write_page(tmp_path, *status_page.build(schedule_data(live=[POSSIBLE_NOW] + LATER)))
    open_at(browser, page.as_uri(), 360)
    today = browser.find_element(By.CSS_SELECTOR, '.timeline[data-date="2025-10-27"]')
    bar = today.find_element(By.CSS_SELECTOR, ".bar svg").rect
    definite = today.find_element(By.CSS_SELECTOR, "rect.win-definite").rect
    possible = today.find_element(By.CSS_SELECTOR, "rect.win-possible").rect
    # under the day's timeline, across its hours 14:00-18:00; the possible window drawn thinner
    assert definite["y"] >= bar["y"] + bar["height"]
    assert definite["width"] == pytest.approx(bar["width"] / 6, abs=2)
    assert 0 < possible["height"] < definite["height"]
    assert browser.find_element(By.ID, "schedule-now").text == "Possible outage now: 27 Oct 10:00–12:30"
    assert [span.text for span in browser.find_elements(By.CSS_SELECTOR, "#outages .sched")] == [
        "in a possible outage 27 Oct 10:00–12:30", "not scheduled", "scheduled 26 Oct 18:00–22:00"]
    assert browser.execute_script("return document.documentElement.scrollWidth <= document.documentElement.clientWidth")
    screenshot(browser, "phone-360-schedule.png")
