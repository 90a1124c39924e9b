"""Days in the user's time zone: known answers across DST changes and :30/:45 offsets.

Every figure below was worked out by hand from the readings' UTC times (the comments give the
local day's bounds in UTC). Each scenario has an outage crossing local midnight and minutes
without a reading at the day's edges. Hours stay UTC hours.
"""

import datetime as dt

import pytest

import aggregate
import aggregation
import dynamo
from tests.conftest import run_script
from tests.test_aggregate import DEVICE, awaiting, days_described, pin, store, stored

UTC = dt.timezone.utc
LATER = dt.datetime(2025, 12, 1, tzinfo=UTC)  # "now": every day below is over


def utc(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def span(first, end, value):
    """Pin readings, one a minute, from `first` up to (not including) `end`, UTC ISO times."""
    start = utc(first)
    return [(start + dt.timedelta(minutes=m), value) for m in range((utc(end) - start) // aggregation.MINUTE)]


def local(text):
    return dt.datetime.combine(dt.date.fromisoformat(text), dt.time(), tzinfo=UTC)


def ratio(on, count):
    return round(on / count, 6)


SCENARIOS = {
    # 2025-10-26, clocks back 04:00 EEST -> 03:00 EET: the day is 2025-10-25 21:00 to 10-26 22:00
    # UTC, 25 h. OFF 20:30 to 21:39 across local midnight, nothing 20:50-21:09 and 21:30-22:09.
    "Europe/Kyiv, 25 h": (
        "Europe/Kyiv",
        span("2025-10-25T19:00", "2025-10-25T20:30", 1) + span("2025-10-25T20:30", "2025-10-25T20:50", 0)
        + span("2025-10-25T21:10", "2025-10-25T21:40", 0) + span("2025-10-25T21:40", "2025-10-26T05:00", 1)
        + span("2025-10-26T05:00", "2025-10-26T05:30", 0) + span("2025-10-26T05:30", "2025-10-26T21:30", 1)
        + span("2025-10-26T22:10", "2025-10-26T22:30", 1),
        {
            # 90 ON + 20 OFF; the OFF run is 20:30..21:39 = 70 minutes measured whole
            "2025-10-25": pin(110, 90, 1, 70, 1440),
            # 30 OFF (21:10-21:39, after an OFF: no outage) + 440 ON + 30 OFF (05:00, after an ON)
            # + 960 ON = 1460 of 1500; unknown 21:00-21:09 and 21:30-21:59
            "2025-10-26": pin(1460, 1400, 1, 70, 1500),
            "2025-10-27": pin(20, 20, 0, 0, 1440),
        },
        {"2025-10-26": "2025-10-26T00:00:00+03:00", "2025-10-27": "2025-10-27T00:00:00+02:00"},
    ),
    # 2025-03-30, clocks forward 03:00 EET -> 04:00 EEST: 2025-03-29 22:00 to 03-30 21:00 UTC, 23 h.
    # Nothing 22:00-22:19; OFF 20:40 to 21:29 across local midnight, nothing 20:50-21:04.
    "Europe/Kyiv, 23 h": (
        "Europe/Kyiv",
        span("2025-03-29T22:20", "2025-03-30T02:00", 1) + span("2025-03-30T02:00", "2025-03-30T02:15", 0)
        + span("2025-03-30T02:15", "2025-03-30T20:40", 1) + span("2025-03-30T20:40", "2025-03-30T20:50", 0)
        + span("2025-03-30T21:05", "2025-03-30T21:30", 0) + span("2025-03-30T21:30", "2025-03-30T22:00", 1),
        {
            # 220 ON + 15 OFF + 1105 ON + 10 OFF = 1350 of 1380; outages at 02:00 and 20:40;
            # the run 20:40..21:29 is 50 minutes
            "2025-03-30": pin(1350, 1325, 2, 50, 1380),
            # 25 OFF then 30 ON; 21:05 follows 20:49, an OFF: no outage
            "2025-03-31": pin(55, 30, 0, 50, 1440),
        },
        {"2025-03-30": "2025-03-30T00:00:00+02:00", "2025-03-31": "2025-03-31T00:00:00+03:00"},
    ),
    # +05:30: 2025-06-21 is 06-20 18:30 to 06-21 18:30 UTC. OFF 18:10 to 18:59 across local
    # midnight, nothing 18:25-18:39 and 18:20-18:34 the next evening.
    "Asia/Kolkata": (
        "Asia/Kolkata",
        span("2025-06-20T17:00", "2025-06-20T18:10", 1) + span("2025-06-20T18:10", "2025-06-20T18:25", 0)
        + span("2025-06-20T18:40", "2025-06-20T19:00", 0) + span("2025-06-20T19:00", "2025-06-21T12:00", 1)
        + span("2025-06-21T12:00", "2025-06-21T12:45", 0) + span("2025-06-21T12:45", "2025-06-21T18:20", 1)
        + span("2025-06-21T18:35", "2025-06-21T18:50", 1),
        {
            "2025-06-20": pin(85, 70, 1, 50, 1440),
            # 20 OFF + 1020 ON + 45 OFF + 335 ON; unknown 18:30-18:39 and 18:20-18:29
            "2025-06-21": pin(1420, 1355, 1, 50, 1440),
            "2025-06-22": pin(15, 15, 0, 0, 1440),
        },
        {"2025-06-21": "2025-06-21T00:00:00+05:30"},
    ),
    # +05:45: 2025-06-21 is 06-20 18:15 to 06-21 18:15 UTC. OFF 17:50 to 18:49 across local
    # midnight, nothing 18:10-18:19; nothing 18:05-18:14 at its end, and the next day opens OFF.
    "Asia/Kathmandu": (
        "Asia/Kathmandu",
        span("2025-06-20T16:00", "2025-06-20T17:50", 1) + span("2025-06-20T17:50", "2025-06-20T18:10", 0)
        + span("2025-06-20T18:20", "2025-06-20T18:50", 0) + span("2025-06-20T18:50", "2025-06-21T18:05", 1)
        + span("2025-06-21T18:15", "2025-06-21T18:30", 0) + span("2025-06-21T18:30", "2025-06-21T19:00", 1),
        {
            "2025-06-20": pin(130, 110, 1, 60, 1440),
            # 30 OFF (after an OFF: no outage) + 1395 ON; unknown 18:15-18:19 and 18:05-18:14
            "2025-06-21": pin(1425, 1395, 0, 60, 1440),
            # 18:15 OFF follows 18:04 ON, in the same UTC hour but the day before
            "2025-06-22": pin(45, 30, 1, 15, 1440),
        },
        {"2025-06-21": "2025-06-21T00:00:00+05:45"},
    ),
    # Southern spring, 2025-10-05 clocks forward 02:00 AEST -> 03:00 AEDT: 10-04 14:00 to 10-05
    # 13:00 UTC, 23 h. OFF 13:30 to 14:29 across midnight, nothing 13:50-14:09; nothing from 11:30
    # to 13:00 (a whole empty hour) and the next day opens OFF after it.
    "Australia/Sydney": (
        "Australia/Sydney",
        span("2025-10-04T12:00", "2025-10-04T13:30", 1) + span("2025-10-04T13:30", "2025-10-04T13:50", 0)
        + span("2025-10-04T14:10", "2025-10-04T14:30", 0) + span("2025-10-04T14:30", "2025-10-05T11:30", 1)
        + span("2025-10-05T13:00", "2025-10-05T13:10", 0) + span("2025-10-05T13:10", "2025-10-05T13:30", 1),
        {
            "2025-10-04": pin(110, 90, 1, 60, 1440),
            # 20 OFF + 1260 ON = 1280 of 1380; unknown 14:00-14:09 and 11:30-12:59
            "2025-10-05": pin(1280, 1260, 0, 60, 1380),
            # 13:00 OFF follows 11:29 ON across the empty hour 12:00
            "2025-10-06": pin(30, 20, 1, 10, 1440),
        },
        {"2025-10-05": "2025-10-05T00:00:00+10:00", "2025-10-06": "2025-10-06T00:00:00+11:00"},
    ),
    # -02:30 NDT -> -03:30 NST on 2025-11-02 (02:00 -> 01:00): 11-02 02:30 to 11-03 03:30 UTC,
    # 25 h and a :30 offset. OFF 02:10 to 02:59 across midnight, nothing 02:20-02:39; nothing
    # 03:10-03:39 the next night, and the next day's first reading is OFF.
    "America/St_Johns": (
        "America/St_Johns",
        span("2025-11-02T01:00", "2025-11-02T02:10", 1) + span("2025-11-02T02:10", "2025-11-02T02:20", 0)
        + span("2025-11-02T02:40", "2025-11-02T03:00", 0) + span("2025-11-02T03:00", "2025-11-03T03:10", 1)
        + span("2025-11-03T03:40", "2025-11-03T03:50", 0) + span("2025-11-03T03:50", "2025-11-03T04:00", 1),
        {
            "2025-11-01": pin(80, 70, 1, 50, 1440),
            # 20 OFF + 1450 ON = 1470 of 1500; unknown 02:30-02:39 and 03:10-03:29
            "2025-11-02": pin(1470, 1450, 0, 50, 1500),
            "2025-11-03": pin(20, 10, 1, 10, 1440),
        },
        {"2025-11-02": "2025-11-02T00:00:00-02:30", "2025-11-03": "2025-11-03T00:00:00-03:30"},
    ),
}


def transitions(readings):
    return sum(1 for (_, before), (_, after) in zip(readings, readings[1:]) if before == 1 and after == 0)


@pytest.mark.parametrize("name", SCENARIOS)
def test_known_answers_in_the_users_zone(dynamodb, config, name):
    zone, readings, days, starts = SCENARIOS[name]
    config["timezone"] = zone
    store(dynamodb, config, readings)
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert stored(dynamodb, config, "days") == {local(day): stats for day, stats in days.items()}
    described = days_described(dynamodb, config)
    assert {day: described[dt.date.fromisoformat(day)] for day in starts} == {
        day: (zone, start) for day, start in starts.items()}
    # hours stay whole UTC hours and hold every reading once
    hours = stored(dynamodb, config, "hours")
    assert all(hour.minute == 0 for hour in hours)
    assert sum(stats["count"] for stats in hours.values()) == len(readings)
    # every reading is compared with the one before it: the days' outages add up
    assert sum(stats["outages"] for stats in stored(dynamodb, config, "days").values()) == transitions(readings)
    assert awaiting(dynamodb, config) == 0


@pytest.mark.parametrize("name", ["Europe/Kyiv, 25 h", "Asia/Kathmandu"])
def test_hourly_runs_converge_on_the_same_days(dynamodb, config, name):
    """Aggregated as cron does, an hour at a time, the days end as in one run over it all."""
    zone, readings, days, _starts = SCENARIOS[name]
    config["timezone"] = zone
    hour = aggregate.hour_of(readings[0][0])
    while hour <= readings[-1][0]:
        store(dynamodb, config, [(minute, value) for minute, value in readings if hour <= minute < hour + aggregation.HOUR])
        aggregate.aggregate(config, DEVICE, client=dynamodb, now=hour + dt.timedelta(minutes=65))
        hour += aggregation.HOUR
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert stored(dynamodb, config, "days") == {local(day): stats for day, stats in days.items()}
    assert awaiting(dynamodb, config) == 0


def test_late_readings_reopen_a_local_day(dynamodb, config):
    """Readings flushed days late land in their local day, and its outages and longest outage follow."""
    config["timezone"] = "Asia/Kolkata"
    # 2025-06-21 in Kolkata is 06-20 18:30 to 06-21 18:30 UTC; the Pi was off the net from
    # 18:00 to 19:00 UTC, across local midnight, and kept what it read in its buffer.
    store(dynamodb, config, span("2025-06-20T17:00", "2025-06-20T18:00", 1)
          + span("2025-06-20T19:00", "2025-06-20T20:00", 1))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert stored(dynamodb, config, "days")[local("2025-06-21")] == pin(60, 60, 0, 0, 1440)
    assert awaiting(dynamodb, config) == 0
    # its buffer comes back days later: 18:00-18:44 OFF, 18:45-18:59 ON. 18:00-18:29 is the 20th
    # (local 23:30-23:59) and starts an outage there; 18:30-18:44 OFF opens the 21st: no outage
    # (it follows an OFF), and the run 18:00..18:44 is 45 minutes long in both days.
    store(dynamodb, config, span("2025-06-20T18:00", "2025-06-20T18:45", 0)
          + span("2025-06-20T18:45", "2025-06-20T19:00", 1))
    result = aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    days = stored(dynamodb, config, "days")
    assert days[local("2025-06-20")] == pin(60 + 30, 60, 1, 45, 1440)
    assert days[local("2025-06-21")] == pin(15 + 15 + 60, 75, 0, 45, 1440)
    assert result.days == 2 and result.touched["4"] >= {dt.date(2025, 6, 20)}
    assert awaiting(dynamodb, config) == 0


def test_changing_the_zone_then_rebuilding_the_days(server_env, server_client):
    """Days made in UTC are remade in Europe/Kyiv by --rebuild-days; status tells until then."""
    import zoneinfo

    config = {"table_prefix": server_env["BLACKOUT_TABLE_PREFIX"]}
    kyiv = zoneinfo.ZoneInfo("Europe/Kyiv")
    day = dt.datetime.now(UTC).date() - dt.timedelta(days=20)  # status looks back 13 months
    while aggregation.day_window(day, kyiv)[1] - aggregation.day_window(day, kyiv)[0] != aggregation.DAY:
        day -= dt.timedelta(days=7)  # a day of 24 h, so the figures below hold whatever the date
    midnight = aggregation.day_window(day, kyiv)[0]
    minute = aggregation.MINUTE
    # local 23:00-23:29 ON, 23:30-03:59 OFF across midnight, 04:00-05:59 ON
    store(server_client, config, [(midnight + m * minute, 1) for m in range(-60, -30)]
          + [(midnight + m * minute, 0) for m in range(-30, 240)]
          + [(midnight + m * minute, 1) for m in range(240, 360)])
    result = run_script("aggregate.py", "--device", DEVICE, env=server_env)
    assert result.returncode == 0, result.stderr
    utc_days = sorted(start.date() for start in stored(server_client, config, "days"))
    assert utc_days == [day - dt.timedelta(days=1), day]  # Kyiv's midnight is 21:00 or 22:00 UTC
    env = dict(server_env, BLACKOUT_TIMEZONE="Europe/Kyiv")
    status = run_script("dynamo.py", "status", "--device", DEVICE, env=env)
    assert status.returncode == 0, status.stderr
    assert (f"2 days items in another time zone (UTC) than timezone Europe/Kyiv, {utc_days[0]} to {utc_days[1]}; "
            f"recompute them with aggregate.py --rebuild-days --from {utc_days[0]} --to {utc_days[1]}") in status.stdout
    result = run_script("aggregate.py", "--device", DEVICE, "--rebuild-days", "--from", utc_days[0],
                        "--to", utc_days[1], env=env)
    assert result.returncode == 0, result.stderr
    # the day before: 30 ON + 30 OFF, one outage; the day: 240 OFF + 120 ON; the run is 270 minutes
    assert stored(server_client, config, "days") == {
        local(str(utc_days[0])): pin(60, 30, 1, 270, 1440), local(str(utc_days[1])): pin(360, 120, 0, 270, 1440)}
    assert {tz for tz, _start in days_described(server_client, config).values()} == {"Europe/Kyiv"}
    assert days_described(server_client, config)[day][1] == midnight.astimezone(kyiv).isoformat()
    status = run_script("dynamo.py", "status", "--device", DEVICE, env=env)
    assert status.returncode == 0 and "another time zone" not in status.stdout


def test_rebuilding_leaves_no_day_of_the_old_zone(dynamodb, config):
    """A day that holds readings only in the old zone becomes an empty day of the new one."""
    store(dynamodb, config, span("2025-06-20T22:00", "2025-06-20T23:00", 1))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)  # UTC: 06-20
    config["timezone"] = "Asia/Tokyo"  # +09:00: the readings are 06-21 07:00-07:59
    result = aggregate.rebuild_days(config, DEVICE, dt.date(2025, 6, 20), dt.date(2025, 6, 21),
                                    client=dynamodb, now=LATER)
    assert result.days == 2
    assert stored(dynamodb, config, "days") == {
        local("2025-06-20"): {"count": 0, "expected": 1440, "unknown": 1440, "on": 0, "off": 0, "uptime": 0.0,
                              "outages": 0, "longest_outage_minutes": 0},
        local("2025-06-21"): pin(60, 60, 0, 0, 1440)}
    assert {tz for tz, _start in days_described(dynamodb, config).values()} == {"Asia/Tokyo"}
    again = aggregate.rebuild_days(config, DEVICE, dt.date(2025, 6, 20), dt.date(2025, 6, 21),
                                   client=dynamodb, now=LATER)
    assert again.days == 0  # a rerun changes nothing


def test_bme280_days_follow_the_zone(dynamodb, config):
    config["timezone"] = "Asia/Kolkata"
    room = {"humidity_pct": 50.0, "pressure_hpa": 1000.0}  # a BME280 reading has all three (the buffer's rule)
    values = [(utc("2025-06-20T18:29"), {"temperature_c": 20.0, **room}),
              (utc("2025-06-20T18:30"), {"temperature_c": 22.0, **room}),
              (utc("2025-06-21T18:29"), {"temperature_c": 26.0, **room})]
    store(dynamodb, config, values, sensor="bme280")
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    days = stored(dynamodb, config, "days", "bme280")
    steady = {f"{name}_{stat}": value for name, value in room.items() for stat in ("min", "max", "mean")}
    assert days == {
        local("2025-06-20"): {"count": 1, "expected": 1440, "unknown": 1439, "temperature_c_min": 20.0,
                              "temperature_c_max": 20.0, "temperature_c_mean": 20.0, **steady},
        local("2025-06-21"): {"count": 2, "expected": 1440, "unknown": 1438, "temperature_c_min": 22.0,
                              "temperature_c_max": 26.0, "temperature_c_mean": 24.0, **steady}}


@pytest.mark.parametrize("args, message", [
    (["--rebuild-days", "--from", "2025-06-01"], "--rebuild-days needs --from DATE and --to DATE"),
    (["--rebuild-days", "--from", "2025-06-31", "--to", "2025-07-01"], "--from '2025-06-31' is not a date"),
    (["--rebuild-days", "--from", "2025-06-02", "--to", "2025-06-01"], "--to 2025-06-01 is before --from 2025-06-02"),
    (["--from", "2025-06-01", "--to", "2025-06-02"], "--from and --to go with --rebuild or --rebuild-days"),
    (["--timezone", "Europe/Kiev2", "--rebuild-days", "--from", "2025-06-01", "--to", "2025-06-02"],
     "timezone 'Europe/Kiev2' is not a time zone name"),
])
def test_bad_rebuild_flags_and_zones_exit_2_with_one_line(server_env, args, message):
    result = run_script("aggregate.py", "--device", DEVICE, *args, env=server_env)
    assert result.returncode == 2
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: ") and message in result.stderr
    assert "Traceback" not in result.stderr


def test_an_unknown_zone_name_in_the_environment_exits_2(server_env):
    result = run_script("aggregate.py", "--device", DEVICE, env=dict(server_env, BLACKOUT_TIMEZONE="Mars/Olympus"))
    assert result.returncode == 2
    assert result.stderr == "Error: BLACKOUT_TIMEZONE 'Mars/Olympus' is not a time zone name such as Europe/Kyiv or UTC\n"


def test_utc_days_record_their_zone_and_start(dynamodb, config):
    store(dynamodb, config, span("2025-06-21T10:00", "2025-06-21T11:00", 1))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert days_described(dynamodb, config) == {dt.date(2025, 6, 21): ("UTC", "2025-06-21T00:00:00+00:00")}
    assert dynamo.day_start(dynamo.plain(dynamodb.scan(TableName="test-bm-days")["Items"][0])) == utc("2025-06-21T00:00")
