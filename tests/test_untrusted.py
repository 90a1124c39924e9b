"""A Pi's data is untrusted: no device, buffer file or value can stop another device's work.

Unit checks of untrusted.py's validators, the cases of issue 23 one by one, then two
property-based tests (Hypothesis): a hostile device writing random items under its own keys
beside two honest ones, and random buffer files.
"""

import datetime as dt
import json
import logging

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import aggregate
import dynamo
import filebuffer
import status
import untrusted
import watchdog
import watchdog_state
from filebuffer import Reading
from utils import ConfigError, JobFailed, load_config, run_cli

UTC = dt.timezone.utc
NOW = dt.datetime(2025, 6, 21, 12, 5, 30, tzinfo=UTC)  # every hour settled: a rerun only reads the markers
HONEST, SILENT, MALLORY = "honest_rpi", "silent_rpi", "mallory"


def minute(hh_mm):
    hours, minutes = map(int, hh_mm.split(":"))
    return dt.datetime(2025, 6, 21, hours, minutes, 3, tzinfo=UTC)


def raw_minute(device="d", sensor="4", ts=None, **values):
    return dynamo.minute_item(Reading(device, sensor, ts or minute("10:07"), values or {"reading": 1}))


# --- the validators --------------------------------------------------------------------------------

def test_a_good_minute_item_passes_and_comes_back_plain():
    item = untrusted.minute_item(raw_minute(), "d", "4")
    assert item["reading"] == 1 and item["pk"] == "device#d#sensor#4#date#2025-06-21-10"


@pytest.mark.parametrize("change, reason", [
    ({"ts": {"S": "garbage"}}, "not an ISO 8601 time"),
    ({"ts": {"N": "5"}}, "ts is int"),
    ({"ts": {"S": "2025-06-21T10:08:03+00:00"}}, "not in the minute of its key"),
    ({"ts": {"S": "9999-12-31T23:59:59-01:00"}}, "not an ISO 8601 time"),
    ({"ts": {"S": "2025-06-21T10:07:03"}}, "has no offset"),
    ({"reading": {"S": "1"}}, "reading is not 0 or 1"),
    ({"reading": {"N": "2"}}, "reading is not 0 or 1"),
    ({"pk": {"S": "device#other#sensor#4#date#2025-06-21-10"}}, "names device 'other'"),
    ({"pk": {"S": "device#d#sensor#4#date#2025-6-21-10"}}, "not in the minute of its key"),
    ({"pk": {"S": "device#d#registry"}}, "not a data partition key"),
    ({"sk": {"S": "time#7"}}, "not in the minute of its key"),
])
def test_a_bad_minute_item_is_refused_with_a_one_line_reason(change, reason):
    item = {**raw_minute(), **change}
    with pytest.raises(untrusted.BadItem, match=reason) as error:
        untrusted.minute_item(item, "d", "4")
    assert "\n" not in str(error.value)


def test_a_missing_ts_is_refused():
    item = raw_minute()
    del item["ts"]
    with pytest.raises(untrusted.BadItem, match="ts is NoneType"):
        untrusted.minute_item(item, "d", "4")


@pytest.mark.parametrize("item, reason", [
    ({"pk": {"S": "device#d#registry"}, "sk": {"S": "sensor#4"}, "device": {"S": "d"}}, "sensor is missing"),
    ({"pk": {"S": "device#d#registry"}, "sk": {"S": "sensor#5"}, "device": {"S": "d"}, "sensor": {"S": "4"}},
     "key does not match"),
    ({"pk": {"S": "device#d#registry"}, "sk": {"S": "sensor#x"}, "device": {"S": "d"}, "sensor": {"S": "x"}},
     "not a pin number"),
    ({"pk": {"S": "device#d#registry"}, "sk": {"S": "sensor#4"}, "device": {"S": "e"}, "sensor": {"S": "4"}},
     "device attribute"),
])
def test_a_bad_registry_item_is_refused(item, reason):
    with pytest.raises(untrusted.BadItem, match=reason):
        untrusted.registry_item(item, "d")
    good = {"pk": {"S": "device#d#registry"}, "sk": {"S": "sensor#4"}, "device": {"S": "d"}, "sensor": {"S": "4"}}
    assert untrusted.registry_item(good, "d") == "4"


def test_an_index_item_must_be_in_its_own_devices_partition():
    own = {**raw_minute(), "pk_status": {"S": dynamo.status_key("d", "4")}}
    assert untrusted.index_item(own, "d", "4") == (own["pk"]["S"], own["sk"]["S"])
    forged = {**raw_minute(device="mallory"), "pk_status": {"S": dynamo.status_key("d", "4")}}
    with pytest.raises(untrusted.BadItem, match="names device 'mallory'"):
        untrusted.index_item(forged, "d", "4")
    other_sensor = {**raw_minute(sensor="5"), "pk_status": {"S": dynamo.status_key("d", "4")}}
    with pytest.raises(untrusted.BadItem, match="names sensor '5'"):
        untrusted.index_item(other_sensor, "d", "4")


@pytest.mark.parametrize("kind, key, good", [
    ("hours", dynamo.hour_key("d", "4", minute("10:00").replace(second=0)), True),
    ("hours", ("device#d#sensor#4#date#2025-06-21", "time#24"), False),
    ("hours", ("device#d#sensor#4#date#2025-06-21", "time#xx"), False),
    ("days", dynamo.day_key("d", "4", dt.date(2025, 6, 21)), True),
    ("days", ("device#d#sensor#4#date#2025-06", "time#31"), False),
])
def test_hours_and_days_items(kind, key, good):
    item = {"pk": {"S": key[0]}, "sk": {"S": key[1]}, "ts": {"S": "2025-06-21T12:00:00+00:00"}}
    if good:
        assert untrusted.period_item(item, "d", "4", kind).tzinfo is UTC
    else:
        with pytest.raises(untrusted.BadItem):
            untrusted.period_item(item, "d", "4", kind)


@pytest.mark.parametrize("pk, sk, device, good", [
    ("device#d#sensor#4#status#new", "hour#2025-06-21-10", "d", True),
    ("device#mallory#sensor#4#status#new", "hour#2025-06-21-10", "d", False),
    ("device#d#sensor#4#status#new", "hour#2025-06-21-24", "d", False),
    ("device#d#sensor#4#status#new", "hour#2025-6-21-10", "d", False),
    ("device#d#sensor#x#status#new", "hour#2025-06-21-10", "d", False),
    ("device#d#sensor#4#status#old", "hour#2025-06-21-10", "d", False),
])
def test_new_hour_markers(pk, sk, device, good):
    item = {"pk": {"S": pk}, "sk": {"S": sk}, "ts": {"S": "2025-06-21T10:05:00.000000+00:00"}}
    if good:
        assert untrusted.new_hour_marker(item, device)[2] == dt.datetime(2025, 6, 21, 10, tzinfo=UTC)
    else:
        with pytest.raises(untrusted.BadItem):
            untrusted.new_hour_marker(item, device)


def test_a_skipped_item_is_one_log_line_naming_its_key_and_counted(caplog):
    before = untrusted.skipped_count()
    with caplog.at_level(logging.WARNING):
        items = list(untrusted.checked([raw_minute(), {**raw_minute(), "reading": {"S": "x\ny"}}],
                                       untrusted.minute_item, "minutes", "d", "4"))
    assert len(items) == 1 and untrusted.skipped_count() == before + 1
    (record,) = [r for r in caplog.records if r.name == "untrusted"]
    assert "pk='device#d#sensor#4#date#2025-06-21-10' sk='time#07'" in record.getMessage()
    assert "\n" not in record.getMessage()


# --- three devices in one table ------------------------------------------------------------------------

def put_readings(client, config, device, start, end, off=()):
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    pk, sk = dynamo.registry_key(device, "4")
    client.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": device},
                                           "sensor": {"S": "4"}})
    times, ts = [], start
    while ts < end:
        times.append(ts)
        ts += dt.timedelta(minutes=1)
    # as the flush writes them: minute items (no pk_status), then a marker of each of their hours
    hours = sorted({ts.replace(minute=0, second=0, microsecond=0) for ts in times})
    dynamo.put_all(client, [(table, dynamo.minute_item(Reading(device, "4", ts, {"reading": 0 if ts in off else 1})))
                            for ts in times] + [(table, dynamo.marker_item(device, "4", hour, end)) for hour in hours])


@pytest.fixture
def three(dynamodb, config):
    """HONEST reports to 11:59 (OFF twice), SILENT stopped at 11:20, MALLORY reports too; all aggregated once."""
    # few items: moto answers a query by reading the whole table
    put_readings(dynamodb, config, HONEST, minute("11:00"), minute("12:00"), off={minute("11:15"), minute("11:16")})
    put_readings(dynamodb, config, SILENT, minute("10:50"), minute("11:20"))
    put_readings(dynamodb, config, MALLORY, minute("11:40"), minute("12:00"))
    wd = {**config, "watch": [HONEST, SILENT, MALLORY], "silent_after": 10, "timezone": None,
          "secrets_parameter": None, "telegram_token": None, "telegram_chat_id": None, "telegram_api_url": None,
          "webhook_url": None, "sns_topic_arn": None, "apprise_urls": None}
    for device in (HONEST, SILENT, MALLORY):
        aggregate.aggregate(config, device, client=dynamodb, now=NOW)
    return wd


def everything_of(client, config, device):
    """What the other devices' users get: the watchdog's verdict and state, aggregates, status."""
    tables = dynamo.table_names(config["table_prefix"])
    hours = list(dynamo.query_all(client, TableName=tables["hours"], KeyConditionExpression="pk = :pk",
                                  ExpressionAttributeValues={":pk": {"S": dynamo.hour_key(device, "4", NOW)[0]}}))
    days = list(dynamo.query_all(client, TableName=tables["days"], KeyConditionExpression="pk = :pk",
                                 ExpressionAttributeValues={":pk": {"S": dynamo.day_key(device, "4", NOW)[0]}}))
    # the hours waiting for the aggregator: the device's pending markers of new hours
    return {"hours": hours, "days": days, "new": dynamo.markers(client, tables["minutes"], device, "4")}


def run_all_commands(client, wd, config):
    """Every shared command once, as of NOW, from a clean watchdog state; what each device sees."""
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    for device in wd["watch"]:
        client.delete_item(TableName=table, Key={"pk": {"S": dynamo.watchdog_key(device)[0]}, "sk": {"S": "state"}})
    lines = {device: list(status.status_lines({**wd, "device": device, "watch": [device]}, client, NOW))
             for device in (HONEST, SILENT)}
    outcomes = watchdog.run(wd, NOW, client)
    states = {device: watchdog_state.load_watchdog_state(client, table, device) for device in (HONEST, SILENT)}
    results = {}
    for device in (HONEST, SILENT, MALLORY):
        results[device] = aggregate.AggregateResult()
        aggregate.aggregate(config, device, client=client, now=NOW, result=results[device])
    return {device: {"outcome": outcomes.get(device), "state": states[device], "status": lines[device],
                     "wrote": (results[device].hours, results[device].days), **everything_of(client, config, device)}
            for device in (HONEST, SILENT)}


def put_hostile(client, config, table_kind, item):
    """Write an item under MALLORY's keys as its credentials could; DynamoDB may refuse it."""
    from botocore.exceptions import ClientError

    table = dynamo.table_names(config["table_prefix"])[table_kind]
    try:
        client.put_item(TableName=table, Item=item)
    except ClientError:
        return None
    return table, {"pk": item["pk"], "sk": item["sk"]}


def test_one_devices_bad_items_cost_only_its_own_check(three, dynamodb, config, caplog):
    baseline = run_all_commands(dynamodb, three, config)
    assert baseline[HONEST]["outcome"] == "recorded" and baseline[SILENT]["outcome"] == "silent"
    assert baseline[HONEST]["hours"] and baseline[HONEST]["new"] == {}
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    mallory_pk = dynamo.minute_key(MALLORY, "4", minute("11:59"))[0]
    mallory_markers = dynamo.status_key(MALLORY, "4")
    bad = [
        # forged markers in its own marker partition: garbage sk or ts
        {"pk": {"S": mallory_markers}, "sk": {"S": "hour#9999-12-31-23"}, "ts": {"S": "2025-06-21T11:57:03+00:00"}},
        {"pk": {"S": mallory_markers}, "sk": {"S": "hour#garbage"}, "ts": {"S": "2025-06-21T11:57:03+00:00"}},
        {"pk": {"S": mallory_markers}, "sk": {"S": "hour#2025-06-21-10"}, "ts": {"N": "5"}},
        {"pk": {"S": mallory_markers}, "sk": {"S": "hour#2025-06-21-09"}},  # no ts
        # a good marker, so its own aggregator reads its hour 11 and meets the bad minutes below
        dynamo.marker_item(MALLORY, "4", minute("11:00").replace(second=0), NOW),
        {"pk": {"S": mallory_pk}, "sk": {"S": "time#59"}, "ts": {"S": "garbage"}, "reading": {"N": "1"}},
        {"pk": {"S": mallory_pk}, "sk": {"S": "time#58"}, "reading": {"N": "1"}},  # no ts
        {"pk": {"S": "device#mallory#registry"}, "sk": {"S": "sensor#5"}, "device": {"S": MALLORY}},  # no sensor
        # its own partition, naming the victims in pk_status (the index of an earlier version): inert
        {"pk": {"S": mallory_pk}, "sk": {"S": "time#57"}, "ts": {"S": "2025-06-21T11:57:03.000000+00:00"},
         "pk_status": {"S": dynamo.status_key(HONEST, "4")}, "reading": {"N": "1"}},
        {"pk": {"S": "device#mallory#x"}, "sk": {"S": "y"}, "ts": {"S": "2025-06-21T11:57:03.000000+00:00"},
         "pk_status": {"S": dynamo.status_key(SILENT, "4")}},
    ]
    for item in bad:
        dynamodb.put_item(TableName=table, Item=item)
    with caplog.at_level(logging.WARNING):
        after = run_all_commands(dynamodb, three, config)
    # the same verdicts, aggregates, markers and status lines: the victims' commands read only
    # their own partitions, so they never even meet (or count) MALLORY's bad items
    assert after == baseline
    assert "skipping a bad marker item sk={'S': 'hour#9999-12-31-23'}" in caplog.text
    assert "skipped a bad minutes item pk='device#mallory#sensor#4#date#2025-06-21-11' sk='time#59'" in caplog.text


def test_a_bad_watchdog_state_costs_only_its_device(three, dynamodb, config, caplog):
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    dynamodb.put_item(TableName=table, Item={"pk": {"S": dynamo.watchdog_key(MALLORY)[0]}, "sk": {"S": "state"},
                                             "device": {"S": MALLORY}, "phase": {"S": "silent"}, "version": {"N": "1"},
                                             "silent_since": {"S": "never"}, "outbox": {"S": "[]"}})
    outcomes = watchdog.run(three, NOW, dynamodb)
    assert outcomes == {HONEST: "recorded", SILENT: "silent", MALLORY: "skipped"}
    assert "skipped a bad watchdog state item pk='watchdog#device#mallory'" in caplog.text


# --- the hostile device, property-based ---------------------------------------------------------------

def values():
    scalars = st.one_of(
        st.text(max_size=30).map(lambda text: {"S": text}),
        st.sampled_from(["2025-06-21T11:59:03.000000+00:00", "9999-12-31T23:59:59-01:00", "", "garbage",
                         "2025-06-21T12:01:00+00:00", "1970-01-01T00:00:00+00:00"]).map(lambda text: {"S": text}),
        st.integers(-10**6, 10**6).map(lambda n: {"N": str(n)}),
        st.floats(allow_nan=False, allow_infinity=False, width=32).map(lambda f: {"N": repr(float(f))}),
        st.booleans().map(lambda b: {"BOOL": b}),
        st.just({"NULL": True}),
        st.sampled_from([dynamo.status_key(d, s) for d in (HONEST, SILENT, MALLORY) for s in ("4", "bme280", "x")])
        .map(lambda text: {"S": text}),
    )
    return st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3).map(lambda l: {"L": l}),
                                                         st.dictionaries(st.text(min_size=1, max_size=5), inner,
                                                                         max_size=3).map(lambda m: {"M": m})),
                        max_leaves=6)


ATTRIBUTES = st.one_of(st.sampled_from(["ts", "reading", "temperature_c", "humidity_pct", "pressure_hpa", "sensor",
                                        "device", "pk_status", "ttl", "phase"]), st.text(min_size=1, max_size=8))
SENSORS = st.one_of(st.sampled_from(["4", "bme280", "5", "x", "", "#"]), st.text(max_size=6))
HOURS = st.one_of(st.sampled_from(["2025-06-21-11", "2025-06-21-12", "2025-06-21-10", "2025-06-21", "2025-06",
                                   "2025-6-21-11", "2025-06-21-24", "0000-01-01-00"]),
                  st.sampled_from(["9999-12-31-23", "0001-01-01-00", "2099-01-01-00"]),  # hours at the ends of time
                  st.text(max_size=14))
PKS = st.one_of(
    st.builds(lambda s, h: f"device#{MALLORY}#sensor#{s}#date#{h}", SENSORS, HOURS),
    st.just(f"device#{MALLORY}#registry"),
    st.builds(lambda s: f"device#{MALLORY}#sensor#{s}#status#new", SENSORS),
    st.text(max_size=30).map(lambda rest: f"device#{MALLORY}#{rest}"),  # LeadingKeys: only this prefix is sure
)
SKS = st.one_of(st.sampled_from(["time#59", "time#00", "time#7", "time#60", "sensor#4", "sensor#bme280", "sensor#x",
                                 "state"]),
                st.builds(lambda hour: f"hour#{hour}", HOURS),  # forged markers of new hours
                st.text(min_size=1, max_size=12))
TIMES = st.one_of(st.sampled_from(["2025-06-21T11:59:03.000000+00:00", "2025-06-21T12:05:00.000000+00:00",
                                   "9999-12-31T23:59:59-01:00", "garbage", "2025-06-21T11:59:03"]),
                  st.text(min_size=1, max_size=30)).map(lambda text: {"S": text})
STATUS_KEYS = st.sampled_from([dynamo.status_key(device, sensor) for device in (HONEST, SILENT, MALLORY)
                               for sensor in ("4", "bme280")]).map(lambda text: {"S": text})
# the attributes that matter, each present half the time (the old index needed pk_status and ts
# as strings), then any others
KNOWN = st.fixed_dictionaries({}, optional={
    "ts": TIMES, "pk_status": STATUS_KEYS, "reading": values(), "sensor": SENSORS.map(lambda text: {"S": text}),
    "device": st.sampled_from([HONEST, MALLORY, ""]).map(lambda text: {"S": text})})
OTHER = st.dictionaries(ATTRIBUTES, values(), max_size=4)
ITEMS = st.one_of(
    st.builds(lambda pk, sk, known, other: {**other, **known, "pk": {"S": pk}, "sk": {"S": sk}},
              PKS, SKS, KNOWN, OTHER),
    # forged markers of new hours in its own marker partitions: any hour, any ts (or none)
    st.builds(lambda sensor, hour, known, other: {**other, **known, "pk": {"S": dynamo.status_key(MALLORY, sensor)},
                                                  "sk": {"S": f"hour#{hour}"}},
              st.sampled_from(["4", "bme280"]), HOURS, KNOWN, OTHER),
)
WRITES = st.lists(st.tuples(st.sampled_from(["minutes", "minutes", "hours", "days"]), ITEMS), min_size=1, max_size=8)


def test_a_hostile_device_changes_nothing_for_the_others(three, dynamodb, config):
    """Random items under MALLORY's own keys, every attribute free: the other two devices'
    watchdog verdicts, aggregates and status lines stay what they were, and no command raises."""
    baseline = run_all_commands(dynamodb, three, config)

    @settings(max_examples=30, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(WRITES)
    def hostile(writes):
        written = [put_hostile(dynamodb, config, kind, item) for kind, item in writes]
        try:
            after = run_all_commands(dynamodb, three, config)
            for device in (HONEST, SILENT):
                lines = [line for line in after[device]["status"] if not line.startswith("bad items: ")]
                assert {**after[device], "status": lines} == baseline[device]
        finally:
            for place in filter(None, written):
                dynamodb.delete_item(TableName=place[0], Key=place[1])

    hostile()


# --- the buffer ---------------------------------------------------------------------------------------

GOOD = {"format": 1, "device": "alex_rpi", "sensor": "4", "ts": "2025-06-21T10:07:03.000000+00:00", "reading": 1}


@pytest.mark.parametrize("document, reason", [
    ({**GOOD, "ts": "9999-12-31T23:59:59-01:00"}, "not a time"),
    ({**GOOD, "ts": "0001-01-01T00:00:00+01:00"}, "not a time"),
    ({**GOOD, "reading": [1]}, "not 0 or 1"),
])
def test_a_file_that_raises_anything_goes_to_bad_and_blocks_nothing(config, document, reason, caplog):
    buffer = filebuffer.Buffer(config["buffer_dir"])
    buffer.write(Reading("alex_rpi", "4", minute("10:06"), {"reading": 1}))
    filebuffer.write_atomically(buffer.directory, "20250621T100500.000000Z-alex_rpi-4.json", json.dumps(document))
    loaded = [buffer.load(path) for path in buffer.pending()]
    assert [reading.ts for reading in loaded if reading] == [minute("10:06")]
    assert buffer.count("bad") == 1 and reason in caplog.text


def test_deeply_nested_json_goes_to_bad(config):
    buffer = filebuffer.Buffer(config["buffer_dir"])
    buffer.directory.mkdir(parents=True)
    (buffer.directory / "20250621T100500.000000Z-x-4.json").write_text("[" * 100000 + "]" * 100000)
    assert [buffer.load(path) for path in buffer.pending()] == [None] and buffer.count("bad") == 1


def test_a_reading_under_another_device_name_is_held_once_never_batched(dynamodb, config):
    buffer = filebuffer.Buffer(config["buffer_dir"])
    buffer.write(Reading("alex_rpi", "4", minute("10:06"), {"reading": 1}))
    buffer.write(Reading("demo", "4", minute("10:07"), {"reading": 0}))
    with pytest.raises(JobFailed, match="1 buffered readings held .* its device is demo, not alex_rpi"):
        dynamo.flush_and_report(config)
    assert buffer.count() == 0 and buffer.count("held") == 1  # the good one was sent
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    stored = dynamodb.scan(TableName=table)["Items"]
    readings = [item for item in stored if item["sk"]["S"].startswith("time#")]
    assert {item["pk"]["S"] for item in readings} == {"device#alex_rpi#sensor#4#date#2025-06-21-10"}
    # the only marker of new hours is the device's own, of the good reading's hour
    assert {(item["pk"]["S"], item["sk"]["S"]) for item in stored if item["sk"]["S"].startswith("hour#")} == {
        dynamo.marker_key("alex_rpi", "4", minute("10:00").replace(second=0))}
    assert dynamo.flush_and_report(config) is not None  # said once: the next flush is quiet


def test_a_held_file_moved_back_by_hand_is_flushed(dynamodb, config):
    buffer = filebuffer.Buffer(config["buffer_dir"])
    held = buffer.hold(Reading("alex_rpi", "4", minute("10:06"), {"reading": 1}), "the clock was not set")
    held.rename(buffer.directory / held.name)  # README: fix ts if need be, move it back
    assert dynamo.flush(config).sent == 1 and buffer.count("bad") == 0


def test_release_held_moves_back_what_can_be_sent(dynamodb, config, capsys, monkeypatch):
    buffer = filebuffer.Buffer(config["buffer_dir"])
    buffer.hold(Reading("alex_rpi", "4", minute("10:06"), {"reading": 1}), "timesyncd had not synchronised")
    buffer.hold(Reading("alex_rpi", "4", dt.datetime(1970, 1, 1, 0, 1, tzinfo=UTC), {"reading": 1}), "1970")
    buffer.hold(Reading("demo", "4", minute("10:07"), {"reading": 1}), "another device")
    code = run_cli(dynamo.main, ["release-held", "--device", "alex_rpi", "--buffer-dir", str(config["buffer_dir"]),
                                 "--log-dir", str(config["log_dir"]), "--table-prefix", config["table_prefix"]])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith(f"released 1 held readings into {buffer.directory}; 2 still held")
    assert "is before 2024" in out and "its device is demo" in out
    assert buffer.count() == 0 and buffer.count("held") == 2  # released, then flushed


@settings(max_examples=50, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(st.one_of(
    st.binary(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                 lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                 max_leaves=10).map(lambda doc: json.dumps(doc).encode()),
    st.fixed_dictionaries({}, optional={key: st.one_of(st.just(value), st.text(max_size=30), st.integers(),
                                                       st.floats(), st.none())
                                        for key, value in GOOD.items()}).map(lambda doc: json.dumps(doc).encode()),
))
def test_fuzzed_buffer_files_never_block_the_good_ones(tmp_path_factory, content):
    buffer = filebuffer.Buffer(tmp_path_factory.mktemp("buffer"))
    good = Reading("alex_rpi", "4", minute("10:06"), {"reading": 1})
    buffer.write(good)
    (buffer.directory / "20250621T100000.000000Z-fuzz-4.json").write_bytes(content)
    loaded = [buffer.load(path) for path in buffer.pending()]
    assert good in loaded
    assert buffer.count() + buffer.count("bad") == 2


# --- secrets never echoed -------------------------------------------------------------------------------

TOKEN = "123456789:AAHf0secret1token2value3456789abcdef"


@pytest.mark.parametrize("environ", [
    {"BLACKOUT_TELEGRAM_CHAT_ID": TOKEN},
    {"BLACKOUT_TELEGRAM_API_URL": f"api.telegram.org/bot{TOKEN}"},
    {"BLACKOUT_TELEGRAM_API_URL": f"https://api.telegram.org/bot{TOKEN} x"},
    {"BLACKOUT_DEVICE": "o.gn5kj6nfhv736I7jC3cj3QLRiyhgl98b"},
])
def test_a_config_error_never_echoes_a_token_looking_value(environ):
    with pytest.raises(ConfigError) as error:
        load_config(None, ("device", "telegram_chat_id", "telegram_api_url"), environ)
    assert "secret" not in str(error.value) and "gn5kj6" not in str(error.value)
    assert "looks like a token" in str(error.value) or "characters" in str(error.value)


# --- a device's own garbage markers ----------------------------------------------------------------------

@pytest.mark.parametrize("sk, ts", [
    ("hour#garbage", {"S": "2025-06-21T11:00:00.000000+00:00"}),    # bad sk
    ("hour#2025-06-21-24", {"S": "2025-06-21T11:00:00.000000+00:00"}),
    ("hour#9999-12-31-23", {"S": "2025-06-21T11:00:00.000000+00:00"}),  # its hour + 1 h overflows
    ("hour#0001-01-01-00", {"S": "2025-06-21T11:00:00.000000+00:00"}),
    ("hour#2025-6-21-9", {"S": "2025-06-21T11:00:00.000000+00:00"}),     # not as the flush writes it
    ("hour#2025-06-21-09", None),                                        # no ts
    ("hour#2025-06-21-09", {"N": "5"}),                                  # ts a number
    ("hour#2025-06-21-09", {"S": ""}),
    ("hour#2025-06-21-09", {"S": "garbage"}),
    ("hour#2025-06-21-09", {"L": [{"S": "x"}]}),
])
def test_a_garbage_marker_in_a_devices_own_partition_does_not_stop_its_aggregation(dynamodb, config, sk, ts):
    put_readings(dynamodb, config, HONEST, minute("11:00"), minute("12:00"))
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    garbage = {"pk": {"S": dynamo.status_key(HONEST, "4")}, "sk": {"S": sk}, **({"ts": ts} if ts else {})}
    dynamodb.put_item(TableName=table, Item=garbage)
    result = aggregate.aggregate(config, HONEST, client=dynamodb, now=NOW)
    assert result.hours == 1  # hour 11, from its marker
    assert set(dynamo.markers(dynamodb, table, HONEST, "4")) <= {minute("09:00").replace(second=0)}
