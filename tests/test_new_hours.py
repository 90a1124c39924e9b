"""Markers of new hours (SPEC "New hours"): the flush marks, the aggregator deletes on an
unchanged ts, no lock between them, and tables of an earlier version are upgraded in place."""

import datetime as dt
import threading

import aggregate
import dynamo
import filebuffer
import utils
from tests.test_aggregate import DAY1, DEVICE, LATER, at, awaiting, pin, span, store, stored

UTC = dt.timezone.utc
WAIT_SECONDS = 300  # a generous bound on a slow machine: the events, not this, order the threads


def minutes_table(config):
    return dynamo.table_names(config["table_prefix"])["minutes"]


def flush_at(config, client, monkeypatch, now, *readings):
    for ts, value in readings:
        filebuffer.Buffer(config["buffer_dir"]).write(filebuffer.Reading(DEVICE, "4", ts, {"reading": value}))
    monkeypatch.setattr(dynamo, "utc_now", lambda: now)
    calls = []
    client.meta.events.register("before-call.dynamodb.BatchWriteItem", lambda **kw: calls.append(1))
    result = dynamo.flush(config, client=client)
    client.meta.events.unregister("before-call.dynamodb.BatchWriteItem", calls.append)
    assert result.left == 0
    return len(calls)


def test_the_hour_under_way_is_marked_once_and_a_late_reading_marks_again(dynamodb, config, monkeypatch):
    hour = at("19:00")
    first = flush_at(config, dynamodb, monkeypatch, at("19:05") + dt.timedelta(seconds=30),
                     (at("19:05") + dt.timedelta(seconds=3), 1))
    marked = dynamo.markers(dynamodb, minutes_table(config), DEVICE, "4")
    assert first == 2 and list(marked) == [hour]  # the reading, then its hour's marker
    # the next minutes of the hour: one request each, the marker is not written again
    for minute in range(6, 10):
        now = at(f"19:{minute:02d}") + dt.timedelta(seconds=30)
        assert flush_at(config, dynamodb, monkeypatch, now, (now - dt.timedelta(seconds=27), 1)) == 1
    assert dynamo.markers(dynamodb, minutes_table(config), DEVICE, "4") == marked
    # a reading of 19:59 flushed at 20:00:40, after its hour ended: marked again (a newer ts)
    late = flush_at(config, dynamodb, monkeypatch, at("20:00") + dt.timedelta(seconds=40),
                    (at("19:59") + dt.timedelta(seconds=3), 0))
    again = dynamo.markers(dynamodb, minutes_table(config), DEVICE, "4")
    assert late == 2 and list(again) == [hour] and again[hour] > marked[hour]


def test_the_aggregator_keeps_a_marker_written_again_and_one_of_an_hour_not_over(dynamodb, config, monkeypatch):
    store(dynamodb, config, span("10:00", "11:30", 1))
    table = minutes_table(config)
    marked = dynamo.markers(dynamodb, table, DEVICE, "4")
    assert set(marked) == {at("10:00"), at("11:00")}
    # hour 11 is over at 12:00 but not settled until 12:03: its marker stays
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=at("12:02"))
    assert set(dynamo.markers(dynamodb, table, DEVICE, "4")) == {at("11:00")}
    # a marker written again (a late reading's flush) after it was read is not deleted
    dynamodb.put_item(TableName=table, Item=dynamo.marker_item(DEVICE, "4", at("11:00"), LATER))
    assert not dynamo.delete_marker(dynamodb, table, DEVICE, "4", at("11:00"), marked[at("11:00")])
    assert dynamo.markers(dynamodb, table, DEVICE, "4") == {at("11:00"): dynamo.format_ts(LATER)}
    assert dynamo.delete_marker(dynamodb, table, DEVICE, "4", at("11:00"), dynamo.format_ts(LATER))
    assert dynamo.markers(dynamodb, table, DEVICE, "4") == {}


def test_a_backlog_aggregation_and_minute_flushes_run_at_once_and_lose_nothing(dynamodb, config, monkeypatch):
    """aggregate.py's main (no flush lock) recomputes two days of backlog while, each time it
    stores a day, a flush lands replacements and new readings in hours it already read. The
    flush is never turned away, and the next run makes the items equal to a fresh aggregation
    of every reading."""
    backlog = [(minute, value) for minute, value in span("00:00", "00:00", 1, end_day=DAY1 + dt.timedelta(days=2))
               if minute.minute % 10]  # every tenth minute missing, for the flushes to fill
    store(dynamodb, config, backlog)
    now = LATER
    mid, flushed, results, errors, sent_late = threading.Event(), threading.Event(), [], [], []
    aggregator_done = threading.Event()
    original_put_all = dynamo.put_all
    late = iter([(DAY1 + dt.timedelta(hours=h, minutes=m), 0) for h in (3, 30, 5, 40) for m in (10, 11)])

    def put_all_meeting_a_flush(client, items, **kwargs):
        if threading.current_thread().name == "aggregator" and items:
            mid.set()  # the day's minutes are read; let a flush land now
            assert flushed.wait(WAIT_SECONDS), "the flush never came"
            flushed.clear()
        return original_put_all(client, items, **kwargs)

    def aggregator():
        try:
            results.append(aggregate.main(["--device", DEVICE]))
        except Exception as error:  # handed to the test's thread
            errors.append(error)
        finally:
            aggregator_done.set()
            mid.set()

    def flusher():
        try:
            while True:
                assert mid.wait(WAIT_SECONDS), "the aggregation never reached a day"
                mid.clear()
                if aggregator_done.is_set():
                    return
                buffer = filebuffer.Buffer(config["buffer_dir"])
                for ts, value in (next(late), next(late)):
                    sent_late.append((ts, value))
                    buffer.write(filebuffer.Reading(DEVICE, "4", ts + dt.timedelta(seconds=5), {"reading": value}))
                result = dynamo.flush_and_report(dict(config))
                assert result is not None and result.sent == 2, result  # no lock turned it away
                results.append(result.sent)
                flushed.set()
        except Exception as error:
            errors.append(error)
            flushed.set()

    monkeypatch.setattr(dynamo, "put_all", put_all_meeting_a_flush)
    monkeypatch.setattr(aggregate, "utc_now", lambda: now)
    monkeypatch.setattr(aggregate, "load_config", lambda args, keys: dict(config))
    threads = [threading.Thread(target=aggregator, name="aggregator"), threading.Thread(target=flusher)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(WAIT_SECONDS)
    assert errors == [] and not any(thread.is_alive() for thread in threads)
    assert results == [2, 2, utils.EXIT_OK]  # flushes landed mid-run, the run ended well
    monkeypatch.setattr(dynamo, "put_all", original_put_all)
    assert awaiting(dynamodb, config) > 0  # the hours the flushes marked again wait for the next run
    aggregate.aggregate(config, DEVICE, client=dynamodb, now=now)
    assert awaiting(dynamodb, config) == 0 and filebuffer.Buffer(config["buffer_dir"]).count() == 0
    # every reading, the backlog's and the flushed ones, is stored once and aggregated
    expected = dict(backlog)
    expected.update((ts, value) for ts, value in sent_late)
    minutes = [item for item in dynamodb.scan(TableName=minutes_table(config))["Items"]
               if "#date#" in item["pk"]["S"]]
    everything = {dynamo.period_start(item["pk"]["S"], item["sk"]["S"]): int(item["reading"]["N"]) for item in minutes}
    assert everything == expected and len(sent_late) == 4
    fresh = dict(config, table_prefix=config["table_prefix"] + "-fresh")
    dynamo.create_tables(fresh, dynamodb)
    store(dynamodb, fresh, sorted(everything.items()))
    aggregate.aggregate(fresh, DEVICE, client=dynamodb, now=now)
    assert stored(dynamodb, config, "hours") == stored(dynamodb, fresh, "hours")
    assert stored(dynamodb, config, "days") == stored(dynamodb, fresh, "days")
    assert stored(dynamodb, config, "hours")[DAY1 + dt.timedelta(hours=3)] == pin(55, 53, 1, 2)


# --- upgrade in place ------------------------------------------------------------------------------

def legacy_tables(client, config):
    for name in dynamo.table_names(config["table_prefix"]).values():
        client.create_table(**dynamo.legacy_table_definition(name))


def test_tables_of_an_earlier_version_are_upgraded_once_and_another_devices_entry_is_skipped(
        mocked_aws, config, caplog):
    import boto3

    client = boto3.client("dynamodb", region_name="us-east-1")
    legacy_tables(client, config)
    dynamo.create_tables(config, client)  # an older table with status-index is accepted as it is
    tables = dynamo.table_names(config["table_prefix"])
    status = {"pk_status": {"S": dynamo.status_key(DEVICE, "4")}}
    # what the earlier version left: hours 10 and 11 flushed (pk_status), not aggregated yet
    readings = span("10:00", "11:00", 1) + span("11:00", "12:00", 0)
    items = [(tables["minutes"], {**dynamo.minute_item(filebuffer.Reading(DEVICE, "4", ts, {"reading": value})),
                                  **status}) for ts, value in readings]
    # another device's item that names this device's status key: must never become our marker
    hostile = dynamo.minute_item(filebuffer.Reading("mallory", "4", at("05:00"), {"reading": 0}))
    items.append((tables["minutes"], {**hostile, **status}))
    dynamo.put_all(client, items)
    pk, sk = dynamo.registry_key(DEVICE, "4")
    client.put_item(TableName=tables["minutes"], Item={"pk": {"S": pk}, "sk": {"S": sk},
                                                       "device": {"S": DEVICE}, "sensor": {"S": "4"}})
    calls = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **kw: calls.append(model.name))
    result = aggregate.aggregate(config, DEVICE, client=client, now=LATER)
    assert result.hours == 2
    assert stored(client, config, "hours") == {at("10:00"): pin(60, 60, 0, 0), at("11:00"): pin(60, 0, 1, 60)}
    assert "skipping a status-index entry that is not alex_rpi's sensor 4" in caplog.text
    index = client.query(TableName=tables["minutes"], IndexName=dynamo.INDEX_NAME,
                         KeyConditionExpression="pk_status = :s",
                         ExpressionAttributeValues={":s": status["pk_status"]})["Items"]
    assert [item["pk"]["S"] for item in index] == [hostile["pk"]["S"]]  # ours left the index
    assert awaiting(client, config) == 0
    assert calls.count("DescribeTable") == 2 and calls.count("UpdateItem") == 120
    # the next run knows the tables are upgraded: no DescribeTable, no index query
    calls.clear()
    aggregate.aggregate(config, DEVICE, client=client, now=LATER)
    assert "DescribeTable" not in calls and "UpdateItem" not in calls
