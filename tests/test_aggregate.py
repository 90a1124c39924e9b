"""Hourly aggregation: known answers from fixed minute data, reruns, late data, batching.

Minute data is written as the flush writes it (dynamo.minute_item, marked new); every
attribute of the resulting hours and days items is checked against hand-computed values.
"""

import datetime as dt
import random

import pytest

import aggregate
import aggregation
import dynamo
import filebuffer
from tests.conftest import run_script

UTC = dt.timezone.utc
DEVICE = "alex_rpi"
DAY1 = dt.datetime(2025, 6, 21, tzinfo=UTC)
DAY2 = DAY1 + dt.timedelta(days=1)
LATER = dt.datetime(2025, 7, 1, tzinfo=UTC)  # "now" for data that is all in the past


def at(text, day=DAY1):
    hours, minutes = map(int, text.split(":"))
    return day + dt.timedelta(hours=hours, minutes=minutes)


def span(start, end, value, day=DAY1, end_day=None):
    """Pin readings, one a minute, from start up to (not including) end: "HH:MM" times."""
    first, last = at(start, day), at(end, end_day or day)
    return [(first + dt.timedelta(minutes=m), value) for m in range((last - first) // aggregation.MINUTE)]


def store(client, config, readings, sensor="4"):
    """Put minute items exactly as the flush does, 25 at a time, then the markers of their hours."""
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    items, hours = [], set()
    for minute, value in readings:
        values = value if isinstance(value, dict) else {"reading": value}
        reading = filebuffer.Reading(DEVICE, sensor, minute + dt.timedelta(seconds=3, microseconds=241969), values)
        items.append((table, dynamo.minute_item(reading)))
        hours.add(aggregate.hour_of(minute))
    dynamo.put_all(client, items)
    now = dynamo.utc_now()
    dynamo.put_all(client, [(table, dynamo.marker_item(DEVICE, sensor, hour, now)) for hour in sorted(hours)])
    pk, sk = dynamo.registry_key(DEVICE, sensor)
    client.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": DEVICE},
                                           "sensor": {"S": sensor}})


def stored(client, config, kind, sensor="4"):
    """{period start: attributes without pk, sk, ts, pk_status} of every hours or days item of the sensor.

    A days item's key is its local date (as UTC midnight); its `tz` and `start` are left out
    here and checked by days_described."""
    table = dynamo.table_names(config["table_prefix"])[kind]
    items = {}
    for item in client.scan(TableName=table)["Items"]:
        attributes = dynamo.plain(item)
        if "#date#" not in attributes["pk"] or dynamo.parse_partition(attributes["pk"])[1] != sensor:
            continue
        start = dynamo.period_start(attributes.pop("pk"), attributes.pop("sk"))
        attributes.pop("ts")
        attributes.pop("tz", None)
        attributes.pop("start", None)
        items[start] = attributes
    return items


def days_described(client, config, sensor="4"):
    """{local date: (tz, start)} of the sensor's days items."""
    return {dynamo.period_start(item["pk"], item["sk"]).date(): (item["tz"], item["start"])
            for item in map(dynamo.plain, client.scan(TableName=dynamo.table_names(config["table_prefix"])["days"])["Items"])
            if "#date#" in item["pk"] and dynamo.parse_partition(item["pk"])[1] == sensor}


def awaiting(client, config, sensor="4"):
    """Markers of the sensor: hours with new readings (minutes table) and hours whose day is not
    over yet (hours table)."""
    return sum(len(dynamo.markers(client, dynamo.table_names(config["table_prefix"])[kind], DEVICE, sensor))
               for kind in ("minutes", "hours"))


def pin(count, on, outages, longest, expected=60):
    return {"count": count, "expected": expected, "unknown": expected - count, "on": on, "off": count - on,
            "uptime": round(on / count, 6), "outages": outages, "longest_outage_minutes": longest}


SCENARIOS = {
    # 22:30-01:30 OFF across midnight: 180 in every hour and both days it touches
    "outage across midnight": (
        span("20:00", "22:30", 1) + span("22:30", "01:30", 0, end_day=DAY2) + span("01:30", "04:00", 1, DAY2),
        {at("20:00"): pin(60, 60, 0, 0), at("21:00"): pin(60, 60, 0, 0), at("22:00"): pin(60, 30, 1, 180),
         at("23:00"): pin(60, 0, 0, 180), at("00:00", DAY2): pin(60, 0, 0, 180),
         at("01:00", DAY2): pin(60, 30, 0, 180), at("02:00", DAY2): pin(60, 60, 0, 0),
         at("03:00", DAY2): pin(60, 60, 0, 0)},
        {DAY1: pin(240, 150, 1, 180, 1440), DAY2: pin(240, 150, 0, 180, 1440)},
    ),
    # ON on even minutes, OFF on odd ones: 30 outages of one minute
    "flapping pin": (
        [(at("10:00") + dt.timedelta(minutes=m), 1 - m % 2) for m in range(60)],
        {at("10:00"): pin(60, 30, 30, 1)},
        {DAY1: pin(60, 30, 30, 1, 1440)},
    ),
    # unknown minutes 12:30-12:39 inside an OFF run don't break it: 12:20..12:49 = 30 minutes
    "missing minutes": (
        span("12:00", "12:10", 1) + span("12:20", "12:30", 0) + span("12:40", "13:00", 0)[:10]
        + span("12:50", "13:00", 1),
        {at("12:00"): pin(40, 20, 1, 30)},
        {DAY1: pin(40, 20, 1, 30, 1440)},
    ),
    # nothing 03:00-09:59: the 10:00 OFF follows the 02:59 ON across the empty hours
    "hours without readings": (
        span("00:00", "03:00", 1) + span("10:00", "11:00", 0) + span("11:00", "12:00", 1),
        {at("00:00"): pin(60, 60, 0, 0), at("01:00"): pin(60, 60, 0, 0), at("02:00"): pin(60, 60, 0, 0),
         at("10:00"): pin(60, 0, 1, 60), at("11:00"): pin(60, 60, 0, 0)},
        {DAY1: pin(300, 240, 1, 60, 1440)},
    ),
    # the day's first reading (01:00, OFF) follows the previous day's last (21:59, ON)
    "a day starting after a gap": (
        span("21:00", "22:00", 1) + span("01:00", "02:00", 0, DAY2) + span("02:00", "03:00", 1, DAY2),
        {at("21:00"): pin(60, 60, 0, 0), at("01:00", DAY2): pin(60, 0, 1, 60),
         at("02:00", DAY2): pin(60, 60, 0, 0)},
        {DAY1: pin(60, 60, 0, 0, 1440), DAY2: pin(120, 60, 1, 60, 1440)},
    ),
    # ON at 08:26, nothing 08:27-12:26 (cron stopped, or the UPS ran out), OFF from 12:27: the
    # outage is hour 12's, as it is the day's
    "ON, four empty hours, OFF": (
        span("08:00", "08:27", 1) + span("12:27", "13:00", 0) + span("13:00", "13:30", 1),
        {at("08:00"): pin(27, 27, 0, 0), at("12:00"): pin(33, 0, 1, 33), at("13:00"): pin(30, 30, 0, 0)},
        {DAY1: pin(90, 57, 1, 33, 1440)},
    ),
    # its mirror image: OFF until 08:26, nothing, ON from 12:27: no outage (nothing ON before
    # it), one run of 27 minutes that the gap does not lengthen
    "OFF, four empty hours, ON": (
        span("08:00", "08:27", 0) + span("12:27", "13:30", 1),
        {at("08:00"): pin(27, 0, 0, 27), at("12:00"): pin(33, 33, 0, 0), at("13:00"): pin(30, 30, 0, 0)},
        {DAY1: pin(90, 63, 0, 27, 1440)},
    ),
}


@pytest.mark.parametrize("name", SCENARIOS)
def test_known_answers(dynamodb, config, name):
    readings, hours, days = SCENARIOS[name]
    store(dynamodb, config, readings)
    result = aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert stored(dynamodb, config, "hours") == hours
    assert stored(dynamodb, config, "days") == days
    assert all(stats["outages"] == sum(h["outages"] for start, h in hours.items() if aggregate.day_of(start) == day)
               for day, stats in days.items())  # a day's hours add up to the day
    assert result.hours == len(hours) and result.days == len(days)
    assert awaiting(dynamodb, config) == 0
    assert result.touched == {"4": {day.date() for day in days}}


def test_bme280_min_max_mean(dynamodb, config):
    values = [  # three minutes of 10:00 and one of 11:00
        (at("10:00"), {"temperature_c": 21.5, "humidity_pct": 40.0, "pressure_hpa": 1010.0}),
        (at("10:01"), {"temperature_c": 22.5, "humidity_pct": 42.0, "pressure_hpa": 1011.0}),
        (at("10:05"), {"temperature_c": 20.0, "humidity_pct": 41.0, "pressure_hpa": 1012.5}),
        (at("11:30"), {"temperature_c": 25.0, "humidity_pct": 50.5, "pressure_hpa": 1009.0}),
    ]
    store(dynamodb, config, values, sensor="bme280")
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert stored(dynamodb, config, "hours", "bme280") == {
        at("10:00"): {"count": 3, "expected": 60, "unknown": 57,
                      "temperature_c_min": 20.0, "temperature_c_max": 22.5, "temperature_c_mean": 21.333,
                      "humidity_pct_min": 40.0, "humidity_pct_max": 42.0, "humidity_pct_mean": 41.0,
                      "pressure_hpa_min": 1010.0, "pressure_hpa_max": 1012.5, "pressure_hpa_mean": 1011.167},
        at("11:00"): {"count": 1, "expected": 60, "unknown": 59,
                      "temperature_c_min": 25.0, "temperature_c_max": 25.0, "temperature_c_mean": 25.0,
                      "humidity_pct_min": 50.5, "humidity_pct_max": 50.5, "humidity_pct_mean": 50.5,
                      "pressure_hpa_min": 1009.0, "pressure_hpa_max": 1009.0, "pressure_hpa_mean": 1009.0},
    }
    day = stored(dynamodb, config, "days", "bme280")[DAY1]
    # (21.5 + 22.5 + 20 + 25) / 4 = 22.25, weighted from the hours' means
    assert day == {"count": 4, "expected": 1440, "unknown": 1436,
                   "temperature_c_min": 20.0, "temperature_c_max": 25.0, "temperature_c_mean": 22.25,
                   "humidity_pct_min": 40.0, "humidity_pct_max": 50.5, "humidity_pct_mean": 43.375,
                   "pressure_hpa_min": 1009.0, "pressure_hpa_max": 1012.5, "pressure_hpa_mean": 1010.625}
    assert awaiting(dynamodb, config, "bme280") == 0


def test_current_hour_counts_expected_up_to_now(dynamodb, config):
    now = at("14:20") + dt.timedelta(seconds=30)
    store(dynamodb, config, span("13:00", "14:21", 1))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=now)
    hours = stored(dynamodb, config, "hours")
    assert hours[at("14:00")] == pin(21, 21, 0, 0, expected=21)
    assert hours[at("13:00")] == pin(60, 60, 0, 0)
    assert stored(dynamodb, config, "days")[DAY1] == pin(81, 81, 0, 0, expected=14 * 60 + 21)
    # hour 14 and the day are under way: their markers stay (hour 14's in the minutes table,
    # hours 13 and 14 in the hours table) for the run after they end; hour 13's is deleted
    assert awaiting(dynamodb, config) == 1 + 2
    store(dynamodb, config, span("14:21", "15:00", 1))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert stored(dynamodb, config, "hours")[at("14:00")] == pin(60, 60, 0, 0)
    assert awaiting(dynamodb, config) == 0


def test_a_period_that_ends_after_its_last_reading_is_recomputed_whole(dynamodb, config):
    # the sensor stops at 14:00 (unplugged, or its job failing) while the hourly job runs on
    store(dynamodb, config, span("13:00", "14:01", 1))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=at("14:05"))
    assert stored(dynamodb, config, "hours")[at("14:00")] == pin(1, 1, 0, 0, expected=6)
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=at("15:05"))
    assert stored(dynamodb, config, "hours")[at("14:00")] == pin(1, 1, 0, 0, expected=60)
    assert stored(dynamodb, config, "days")[DAY1] == pin(61, 61, 0, 0, expected=15 * 60 + 6)
    assert awaiting(dynamodb, config) == 2  # the hours' markers, until their day is over
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=at("00:05", DAY2))
    assert stored(dynamodb, config, "days")[DAY1] == pin(61, 61, 0, 0, expected=1440)
    assert awaiting(dynamodb, config) == 0
    before = stored(dynamodb, config, "hours"), stored(dynamodb, config, "days")
    store(dynamodb, config, span("13:00", "14:01", 1))  # the same readings flushed again
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert (stored(dynamodb, config, "hours"), stored(dynamodb, config, "days")) == before


def test_a_reading_flushed_during_aggregation_is_not_lost_and_is_aggregated_next_run(
        dynamodb, config, monkeypatch, tmp_path):
    """No lock: a replacement flushed after the minutes were read lands at once; its hour's
    marker, written again after it, survives the conditional delete for the next run."""
    import utils

    store(dynamodb, config, span("10:00", "11:00", 1))
    replacement = filebuffer.Reading(DEVICE, "4", at("10:10") + dt.timedelta(seconds=40), {"reading": 0})
    filebuffer.Buffer(config["buffer_dir"]).write(replacement)
    original, flushed = dynamo.put_all, []

    def put_all_after_a_flush(client, items, **kwargs):
        if not flushed:  # after the minutes were read, before the markers are deleted
            flushed.append(dynamo.flush_and_report(dict(config)))
        return original(client, items, **kwargs)

    monkeypatch.setattr(dynamo, "put_all", put_all_after_a_flush)
    monkeypatch.setattr(aggregate, "utc_now", lambda: at("12:05"))
    monkeypatch.setattr(aggregate, "load_config", lambda args, keys: dict(config))
    assert aggregate.main(["--device", DEVICE]) == utils.EXIT_OK
    assert flushed[0].sent == 1  # the flush waited for nothing
    assert filebuffer.Buffer(config["buffer_dir"]).count() == 0
    assert stored(dynamodb, config, "hours")[at("10:00")] == pin(60, 60, 0, 0)  # computed before it came
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    assert set(dynamo.markers(dynamodb, table, DEVICE, "4")) == {at("10:00")}  # written again: kept
    monkeypatch.setattr(dynamo, "put_all", original)
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=at("12:05"))
    assert stored(dynamodb, config, "hours")[at("10:00")] == pin(60, 59, 1, 1)
    assert awaiting(dynamodb, config) == 1  # the day under way keeps its hour's marker


def test_late_reading_recomputes_its_hour_and_day_and_the_run_it_joins(dynamodb, config):
    # OFF 09:00-09:59 and 11:00-11:59; hour 10 has no readings yet
    store(dynamodb, config, span("08:00", "09:00", 1) + span("09:00", "10:00", 0) + span("11:00", "12:00", 0)
          + span("12:00", "13:00", 1))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert stored(dynamodb, config, "hours")[at("09:00")]["longest_outage_minutes"] == 180  # 09:00..11:59
    assert stored(dynamodb, config, "days")[DAY1]["outages"] == 1
    # three days late, an ON reading at 10:30 splits the run in two
    store(dynamodb, config, [(at("10:30"), 1)])
    result = aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    hours = stored(dynamodb, config, "hours")
    assert hours[at("09:00")] == pin(60, 0, 1, 60)
    assert hours[at("10:00")] == pin(1, 1, 0, 0)
    assert hours[at("11:00")] == pin(60, 0, 1, 60)  # its first reading follows hour 10's ON
    assert stored(dynamodb, config, "days")[DAY1] == pin(241, 121, 2, 60, 1440)
    assert result.hours == 3 and awaiting(dynamodb, config) == 0


def test_late_readings_in_a_gap_move_the_outage_and_its_run(dynamodb, config):
    store(dynamodb, config, span("08:00", "08:27", 1) + span("12:27", "13:00", 0) + span("13:00", "13:30", 1))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert stored(dynamodb, config, "hours")[at("12:00")] == pin(33, 0, 1, 33)
    # an OFF reading at 10:00 arrives late: the outage starts there, and the run is 10:00..12:59
    store(dynamodb, config, [(at("10:00"), 0)])
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    hours = stored(dynamodb, config, "hours")
    assert (hours[at("10:00")], hours[at("12:00")]) == (pin(1, 0, 1, 180), pin(33, 0, 0, 180))
    assert stored(dynamodb, config, "days")[DAY1] == pin(91, 57, 1, 180, 1440)
    # then an ON reading at 11:00: two outages, the second one hour 12's again
    store(dynamodb, config, [(at("11:00"), 1)])
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    hours = stored(dynamodb, config, "hours")
    assert (hours[at("10:00")], hours[at("11:00")], hours[at("12:00")]) == (
        pin(1, 0, 1, 1), pin(1, 1, 0, 0), pin(33, 0, 1, 33))
    assert stored(dynamodb, config, "days")[DAY1] == pin(92, 58, 2, 33, 1440)
    assert awaiting(dynamodb, config) == 0


def test_rebuild_repairs_what_an_older_aggregator_wrote(dynamodb, config, monkeypatch, capsys):
    readings, hours, days = SCENARIOS["ON, four empty hours, OFF"]
    store(dynamodb, config, readings)
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    tables = dynamo.table_names(config["table_prefix"])
    # what the old definition wrote: hour 12 compared only with the empty hour 11
    dynamo.put_all(dynamodb, [(tables["hours"], dynamo.consumed(dynamo.hour_item(
        DEVICE, "4", at("12:00"), {**hours[at("12:00")], "outages": 0}, LATER)))])
    assert stored(dynamodb, config, "hours")[at("12:00")]["outages"] == 0
    assert aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER).hours == 0  # nothing new: left as is
    monkeypatch.setattr(aggregate, "utc_now", lambda: LATER)
    monkeypatch.setattr(aggregate, "load_config", lambda args, keys: dict(config))
    assert aggregate.main(["--device", DEVICE, "--rebuild", "--from", "2025-06-21", "--to", "2025-06-21"]) == 0
    assert stored(dynamodb, config, "hours") == hours and stored(dynamodb, config, "days") == days
    # a person ran it: it says what it did (the hours with minutes, their day; the one wrong item)
    assert capsys.readouterr().out == ("rebuilt alex_rpi from 2025-06-21 to 2025-06-21 (UTC dates): 3 hours and "
                                       "1 days recomputed from their minutes; changed: 1 hours items, 0 days items\n")
    assert awaiting(dynamodb, config) == 0


def test_rerun_gives_the_same_items(dynamodb, config):
    readings, _hours, _days = SCENARIOS["outage across midnight"]
    store(dynamodb, config, readings)
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    first = stored(dynamodb, config, "hours"), stored(dynamodb, config, "days")
    assert aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER).hours == 0  # nothing new
    store(dynamodb, config, readings)  # every reading flushed again: all of it new once more
    again = aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert (again.hours, again.days, again.consumed) == (0, 0, 8)  # recomputed, found unchanged; 8 markers
    assert (stored(dynamodb, config, "hours"), stored(dynamodb, config, "days")) == first


def test_one_sensor_day_is_batched(dynamodb, config):
    store(dynamodb, config, span("00:00", "00:00", 1, end_day=DAY2))
    calls = []
    dynamodb.meta.events.register("before-call.dynamodb.*", lambda model, **kw: calls.append(model.name))
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    # 24 hours + 1 day: 1 batch of 25 (no day marker: the day is over); one delete per hour's marker
    assert calls.count("BatchWriteItem") == 1, calls
    assert calls.count("DeleteItem") == 24, calls
    assert calls.count("Query") <= 30, calls  # registry, 2 marker partitions, 24 hours, a few neighbours
    # the first run looks once whether the tables still have the old status-index
    assert calls.count("DescribeTable") == 2
    assert set(calls) <= {"Query", "BatchWriteItem", "DeleteItem", "DescribeTable"}
    assert stored(dynamodb, config, "days")[DAY1] == pin(1440, 1440, 0, 0, 1440)


def test_sensors_are_found_from_the_registry_and_narrowed(dynamodb, config):
    store(dynamodb, config, span("10:00", "10:05", 1), sensor="4")
    store(dynamodb, config, span("10:00", "10:05", 0), sensor="17")
    assert aggregate.aggregate(config, DEVICE, sensors=["17"], client=dynamodb, now=LATER).touched.keys() == {"17"}
    assert awaiting(dynamodb, config, "4") == 1  # its hour's marker
    assert aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER).touched.keys() == {"4"}


def test_a_crash_before_the_hours_were_consumed_is_finished_by_the_next_run(dynamodb, config, monkeypatch):
    store(dynamodb, config, span("10:00", "12:00", 1))
    calls = []

    def crash_on_consume(*args):
        calls.append(args)
        raise dynamo.CloudUnreachable("link lost")  # the first marker's delete

    original = dynamo.delete_marker
    monkeypatch.setattr(dynamo, "delete_marker", crash_on_consume)
    with pytest.raises(dynamo.CloudUnreachable):
        aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    monkeypatch.setattr(dynamo, "delete_marker", original)
    assert len(calls) == 1 and awaiting(dynamodb, config) == 2  # both hours' markers still there
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert awaiting(dynamodb, config) == 0
    assert stored(dynamodb, config, "days")[DAY1] == pin(120, 120, 0, 0, 1440)


@pytest.mark.parametrize("args, message", [
    (["--sensor", "28"], "--sensor '28' is not a pin number"),
    (["--sensor", "a#b"], "is not a pin number"),
    (["--export-from", "2025-13-01", "--parquet-dir", "x"], "--export-from '2025-13-01' is not a date"),
    (["--export-to", "2025-06-01"], "--export-to needs --export-from"),
    (["--export-from", "2025-06-01"], "nothing to export to"),
    (["--rebuild"], "--rebuild needs --from DATE"),
    (["--rebuild", "--from", "2025-06-31"], "--from '2025-06-31' is not a date"),
    (["--rebuild", "--from", "2025-06-02", "--to", "June"], "--to 'June' is not a date"),
    (["--rebuild", "--from", "2025-06-02", "--to", "2025-06-01"], "--to 2025-06-01 is before --from 2025-06-02"),
    (["--from", "2025-06-01"], "--from and --to go with --rebuild"),
    (["--rebuild", "--from", "2025-06-01", "--export-from", "2025-06-01"], "--rebuild and --export-from go separately"),
    (["--device", "a#b"], "device"),
])
def test_bad_flags_exit_2_with_one_line(server_env, args, message):
    result = run_script("aggregate.py", "--device", "alex_rpi", *args, env=server_env)
    assert result.returncode == 2, result.stderr
    assert message in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


def test_subprocess_against_the_loopback_server(server_env, server_client):
    """read_pin.py --simulate writes 3 hours with a known outage; aggregate.py sums them up."""
    for start, end, value in (("2025-06-21T09:00", "2025-06-21T10:30", "1"),
                              ("2025-06-21T10:30", "2025-06-21T11:15", "0"),
                              ("2025-06-21T11:15", "2025-06-21T12:00", "1")):
        result = run_script("read_pin.py", "--device", DEVICE, "--pin", "4", "--simulate", "--value", value,
                            "--at", start, "--until", end, env=server_env)
        assert result.returncode == 0, result.stderr
    result = run_script("aggregate.py", "--device", DEVICE, env=server_env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    config = {"table_prefix": server_env["BLACKOUT_TABLE_PREFIX"]}
    assert stored(server_client, config, "hours") == {
        at("09:00"): pin(60, 60, 0, 0), at("10:00"): pin(60, 30, 1, 45), at("11:00"): pin(60, 45, 0, 45)}
    assert stored(server_client, config, "days") == {DAY1: pin(180, 135, 1, 45, 1440)}
    assert awaiting(server_client, config) == 0
    again = run_script("aggregate.py", "--device", DEVICE, env=server_env)
    assert (again.returncode, again.stderr) == (0, "")


@pytest.mark.slow
def test_a_week_offline_is_aggregated_in_one_run_with_progress(dynamodb, config, caplog):
    week = [(DAY1 + dt.timedelta(minutes=m), 0 if 600 <= m % 1440 < 660 else 1) for m in range(7 * 1440)]
    store(dynamodb, config, week)
    caplog.set_level("INFO", logger="aggregate")
    result = aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    assert (result.hours, result.days) == (168, 7)
    progress = [r.getMessage() for r in caplog.records if "hours aggregated" in r.getMessage()]
    assert len(progress) == 7 and progress[-1].startswith("sensor 4: 168/168 hours aggregated")
    days = stored(dynamodb, config, "days")
    assert all(days[DAY1 + dt.timedelta(days=d)] == pin(1440, 1380, 1, 60, 1440) for d in range(7))
    assert awaiting(dynamodb, config) == 0


def test_a_second_aggregator_leaves_the_work_to_the_first(server_env, server_client):
    result = run_script("read_pin.py", "--device", DEVICE, "--pin", "4", "--simulate", "--value", "1",
                        "--at", "2025-06-21T09:00", "--until", "2025-06-21T09:30", env=server_env)
    assert result.returncode == 0, result.stderr
    buffer = filebuffer.Buffer(server_env["BLACKOUT_BUFFER_DIR"])
    with buffer.lock(aggregate.LOCK_NAME):
        busy = run_script("aggregate.py", "--device", DEVICE, env=server_env)
    assert (busy.returncode, busy.stderr) == (0, "")
    config = {"table_prefix": server_env["BLACKOUT_TABLE_PREFIX"]}
    assert stored(server_client, config, "hours") == {} and awaiting(server_client, config) == 1
    log_text = "".join(p.read_text() for p in (buffer.directory.parent / "logs").glob("*.log"))
    assert "another aggregation is running" in log_text
    assert run_script("aggregate.py", "--device", DEVICE, env=server_env).returncode == 0
    assert awaiting(server_client, config) == 0


def test_export_range_rewrites_the_mirror_quietly(server_env, server_client, tmp_path):
    pytest.importorskip("pyarrow")
    result = run_script("read_pin.py", "--device", DEVICE, "--pin", "4", "--simulate", "--value", "1",
                        "--at", "2025-06-21T23:50", "--until", "2025-06-22T00:10", env=server_env)
    assert result.returncode == 0, result.stderr
    assert run_script("aggregate.py", "--device", DEVICE, env=server_env).returncode == 0
    export = run_script("aggregate.py", "--device", DEVICE, "--parquet-dir", tmp_path / "parquet",
                        "--export-from", "2025-06-20", "--export-to", "2025-06-22", env=server_env)
    assert (export.returncode, export.stdout, export.stderr) == (0, "", "")  # no progress bar without a terminal
    written = sorted(str(p.relative_to(tmp_path / "parquet")) for p in (tmp_path / "parquet").rglob("*.parquet"))
    assert written == [
        "days/device=alex_rpi/sensor=4/month=2025-06/data.parquet",
        "hours/device=alex_rpi/sensor=4/date=2025-06-21/data.parquet",
        "hours/device=alex_rpi/sensor=4/date=2025-06-22/data.parquet",
        "minutes/device=alex_rpi/sensor=4/date=2025-06-21/data.parquet",
        "minutes/device=alex_rpi/sensor=4/date=2025-06-22/data.parquet",
    ]


# --- outages across gaps, late readings in any order: a property test against a reference -----

def random_power(rng, start, days):
    """(minute, value) readings of `days` from `start`: power that flips at random, and gaps
    from a minute to more than a day (the Pi or cron down), which may start and end ON or OFF."""
    readings, minute, value = [], start, aggregation.ON
    while minute < start + days * aggregation.DAY:
        length = rng.choice((1, 2, 5, 20, 59, 61, 150, 400, 1500)) + rng.randrange(10)
        kind = rng.random()
        if kind < 0.3:  # nothing recorded
            minute += length * aggregation.MINUTE
            continue
        value = 1 - value if kind < 0.8 else value
        for _ in range(min(length, 180)):
            readings.append((minute, value))
            minute += aggregation.MINUTE
    return [(minute, value) for minute, value in readings if minute < start + days * aggregation.DAY]


def reference_statistics(readings):
    """Hours and days statistics of every period, computed from all the readings as SPEC.md
    defines them, independently of aggregation.py (all periods over; spans under MAX_WALK)."""
    values = dict(readings)
    outage_minutes, run_of, runs = set(), {}, []  # run_of: OFF minute -> index in runs
    previous = None
    for minute in sorted(values):
        if values[minute] == 0:
            if previous is not None and values[previous] == 1:
                outage_minutes.add(minute)
            if previous is None or values[previous] == 1:
                runs.append([minute, minute])
            runs[-1][1] = minute
            run_of[minute] = len(runs) - 1
        previous = minute
    periods = {"hours": {}, "days": {}}
    for minute in values:
        periods["hours"].setdefault(minute.replace(minute=0), []).append(minute)
        periods["days"].setdefault(minute.replace(hour=0, minute=0), []).append(minute)
    result = {}
    for kind, length in (("hours", 60), ("days", 1440)):
        result[kind] = {}
        for start, minutes in periods[kind].items():
            on = sum(values[m] for m in minutes)
            touching = {run_of[m] for m in minutes if values[m] == 0}
            result[kind][start] = {
                "count": len(minutes), "expected": length, "unknown": length - len(minutes), "on": on,
                "off": len(minutes) - on, "uptime": round(on / len(minutes), 6),
                "outages": sum(1 for m in minutes if m in outage_minutes),
                "longest_outage_minutes": max(((runs[i][1] - runs[i][0]) // dt.timedelta(minutes=1) + 1
                                               for i in touching), default=0),
            }
    return result


@pytest.mark.slow
def test_random_power_with_gaps_delivered_in_any_order_converges(dynamodb, config):
    """Four days of random power with gaps, flushed late and out of order in chunks (some sent
    twice), aggregated after each: every hours and days item equals the reference each time."""
    rng = random.Random(16)
    readings = random_power(rng, DAY1, days=4)
    cuts = sorted(rng.sample(range(1, len(readings)), 11))
    chunks = [readings[max(0, a - rng.randrange(3)):b] for a, b in zip([0] + cuts, cuts + [len(readings)])]
    rng.shuffle(chunks)
    delivered, compared = {}, 0
    for chunk in chunks:
        store(dynamodb, config, chunk)
        delivered.update(chunk)
        aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
        expected = reference_statistics(delivered.items())
        hours, days = stored(dynamodb, config, "hours"), stored(dynamodb, config, "days")
        assert hours == expected["hours"]
        assert days == expected["days"]
        for day, stats in days.items():
            assert stats["outages"] == sum(h["outages"] for start, h in hours.items() if aggregate.day_of(start) == day)
        compared += len(hours) + len(days)
    assert awaiting(dynamodb, config) == 0
    print(f"{len(readings)} readings in {len(chunks)} chunks: {compared} items compared")
