"""The flush: batches of 25, dedupe, UnprocessedItems backoff, budget, lock, acknowledgement."""

import datetime as dt
import logging

import pytest

import dynamo
import filebuffer

UTC = dt.timezone.utc
START = dt.datetime(2025, 6, 21, 19, 0, 3, 241969, tzinfo=UTC)


def fill(config, count, sensor="4", start=START, step=dt.timedelta(minutes=1)):
    store = filebuffer.Buffer(config["buffer_dir"])
    readings = [filebuffer.Reading(config["device"], sensor, start + step * i, {"reading": i % 2})
                for i in range(count)]
    for reading in readings:
        store.write(reading)
    return store, readings


def count_calls(client):
    calls = []
    client.meta.events.register("before-call.dynamodb.*", lambda model, **kw: calls.append(model.name))
    return calls


def table_items(client, config):
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    return [dynamo.plain(item) for item in client.scan(TableName=table)["Items"] if item["sk"]["S"].startswith("time#")]


def markers(client, config, sensor="4"):
    """{sk: ts} of the sensor's markers of new hours."""
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    return dynamo.markers(client, table, config["device"], sensor)


@pytest.mark.parametrize("function, args, expected", [
    (dynamo.minute_key, ("alex_rpi", "4", START), ("device#alex_rpi#sensor#4#date#2025-06-21-19", "time#00")),
    (dynamo.hour_key, ("alex_rpi", "4", START), ("device#alex_rpi#sensor#4#date#2025-06-21", "time#19")),
    (dynamo.day_key, ("alex_rpi", "bme280", START), ("device#alex_rpi#sensor#bme280#date#2025-06", "time#21")),
    (dynamo.status_key, ("alex_rpi", "4"), "device#alex_rpi#sensor#4#status#new"),
    (dynamo.registry_key, ("alex_rpi", "4"), ("device#alex_rpi#registry", "sensor#4")),
    (dynamo.format_ts, (START,), "2025-06-21T19:00:03.241969+00:00"),
    (dynamo.table_names, ("bm",), {"minutes": "bm-minutes", "hours": "bm-hours", "days": "bm-days"}),
])
def test_key_formats(function, args, expected):
    assert function(*args) == expected


def test_1000_readings_take_40_batches_and_10_of_markers(dynamodb, config):
    store, readings = fill(config, 1000)
    calls = count_calls(dynamodb)
    # time stands still: the budget (tested on its own) must not cut this short on a slow machine
    result = dynamo.flush(config, client=dynamodb, clock=lambda: 0.0)
    # 40 batches of readings in 10 rounds of 100, each round followed by one batch of the markers
    # of its hours (written after them; 17 hours in all)
    assert (result.sent, result.left, result.batches) == (1000, 0, 50)
    assert calls.count("BatchWriteItem") == 50
    assert len(markers(dynamodb, config)) == 17
    assert calls.count("PutItem") == 2  # the sensor's registry item and its latest item, once each
    assert len(table_items(dynamodb, config)) == 1000
    assert store.count() == 0
    calls.clear()
    fill(config, 10, start=START + dt.timedelta(days=1))
    dynamo.flush(config, client=dynamodb)
    # the registry is remembered; readings, their hour's marker, and the latest item moves on
    assert calls == ["BatchWriteItem", "BatchWriteItem", "PutItem"]
    calls.clear()
    fill(config, 10, start=START + dt.timedelta(days=1, minutes=10))
    dynamo.flush(config, client=dynamodb)
    assert calls == ["BatchWriteItem"] * 2  # the same hour: readings and marker; the latest item stays


def test_the_latest_item_finds_the_newest_reading_and_never_moves_back(dynamodb, config):
    """One write per sensor and hour, not per reading; readings replayed from the past leave it."""
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    fill(config, 150, start=START)  # 19:00-21:29
    fill(config, 3, sensor="17", start=START)
    calls = count_calls(dynamodb)
    dynamo.flush(config, client=dynamodb)
    latest = dynamo.latest_times(dynamodb, table, config["device"])
    assert latest == {"4": START + dt.timedelta(minutes=149), "17": START + dt.timedelta(minutes=2)}
    assert calls.count("PutItem") == 2 + 2  # registry and latest, per sensor
    fill(config, 5, start=START - dt.timedelta(days=3))  # a replay of older readings (--at)
    dynamo.flush(config, client=dynamodb)
    assert dynamo.latest_times(dynamodb, table, config["device"])["4"] == START + dt.timedelta(minutes=149)
    (config["buffer_dir"] / dynamo.LATEST_FILE).unlink()  # even when this buffer forgot what it wrote
    fill(config, 5, start=START - dt.timedelta(days=2))
    dynamo.flush(config, client=dynamodb)
    assert dynamo.latest_times(dynamodb, table, config["device"])["4"] == START + dt.timedelta(minutes=149)
    newest = dynamo.newest_reading_from(dynamodb, table, config["device"], "4", latest["4"])
    assert newest["ts"] == dynamo.format_ts(START + dt.timedelta(minutes=149))


def test_the_registry_is_written_again_on_a_new_day(dynamodb, config, monkeypatch):
    """Tables recreated (or another endpoint) must not leave a sensor unregistered for good."""
    today = dt.datetime(2025, 6, 21, 23, 59, 59, tzinfo=UTC)  # injected: the real midnight can't fall mid-test
    monkeypatch.setattr(dynamo, "utc_now", lambda: today)
    fill(config, 1)
    dynamo.flush(config, client=dynamodb)
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    pk, sk = dynamo.registry_key(config["device"], "4")
    dynamodb.delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}})
    fill(config, 1, start=START + dt.timedelta(hours=1))
    dynamo.flush(config, client=dynamodb)
    assert dynamo.sensors_of(dynamodb, table, config["device"]) == []  # cached for today
    monkeypatch.setattr(dynamo, "utc_now", lambda: today + dt.timedelta(seconds=1))
    fill(config, 1, start=START + dt.timedelta(hours=2))
    dynamo.flush(config, client=dynamodb)
    assert dynamo.sensors_of(dynamodb, table, config["device"]) == ["4"]


def test_two_readings_of_one_minute_collapse_and_the_later_wins(dynamodb, config):
    store = filebuffer.Buffer(config["buffer_dir"])
    store.write(filebuffer.Reading(config["device"], "4", START, {"reading": 1}))
    store.write(filebuffer.Reading(config["device"], "4", START + dt.timedelta(seconds=30), {"reading": 0}))
    result = dynamo.flush(config, client=dynamodb)
    assert (result.sent, result.batches) == (2, 2)  # the reading, then its hour's marker
    (item,) = table_items(dynamodb, config)
    assert (item["reading"], item["ts"]) == (0, "2025-06-21T19:00:33.241969+00:00")


class PartialClient:
    """Answers BatchWriteItem as DynamoDB under pressure does: some items come back unprocessed."""

    def __init__(self, unprocessed_rounds, keep=5):
        self.rounds, self.keep, self.requests = unprocessed_rounds, keep, []

    def batch_write_item(self, RequestItems):
        (table, requests), = RequestItems.items()
        self.requests.append(len(requests))
        if (self.rounds > 0 or self.rounds < 0) and "#date#" in requests[0]["PutRequest"]["Item"]["pk"]["S"]:
            self.rounds -= 1
            return {"UnprocessedItems": {table: requests[:self.keep]}}
        return {"UnprocessedItems": {}}

    def put_item(self, **kwargs):
        return {}


def test_unprocessed_items_are_retried_with_growing_jittered_backoff(config):
    fill(config, 25)
    client, sleeps = PartialClient(unprocessed_rounds=4), []
    result = dynamo.flush(config, client=client, sleep=sleeps.append)
    assert result.sent == 25 and filebuffer.Buffer(config["buffer_dir"]).count() == 0
    assert client.requests == [25, 5, 5, 5, 5, 1]  # only the unprocessed items are resent; then the marker
    caps = [min(dynamo.BACKOFF_CAP_SECONDS, dynamo.BACKOFF_BASE_SECONDS * 2 ** n) for n in range(1, 5)]
    assert len(sleeps) == 4 and all(0 <= delay <= cap for delay, cap in zip(sleeps, caps))


def test_the_budget_leaves_unacknowledged_readings_buffered(config):
    store, _ = fill(config, 60)
    now = [0.0]

    def sleep(seconds):
        now[0] += seconds + 1

    client = PartialClient(unprocessed_rounds=-1)  # never gives up the first 5 items of a batch
    result = dynamo.flush(config, budget=10, client=client, clock=lambda: now[0], sleep=sleep)
    # batches of 25, 25 and 10 went out together; each kept its first 5 until the budget ran out
    assert result.sent == 45 and result.left == 15
    assert store.count() == 15
    assert len(client.requests) < 30


def test_a_file_is_deleted_only_after_its_batch_was_acknowledged(dynamodb, config, monkeypatch):
    store, readings = fill(config, 160)  # rounds of 100 (4 batches in flight), then 60
    original, sent = dynamo.batch_write, []

    def fail_one(client, table, requests, deadline, **kwargs):
        if requests[0]["PutRequest"]["Item"]["sk"]["S"] == "time#25":  # the second batch
            raise dynamo.CloudUnreachable("link went down")
        sent.append(len(requests))
        return original(client, table, requests, deadline, **kwargs)

    monkeypatch.setattr(dynamo, "batch_write", fail_one)
    with pytest.raises(dynamo.CloudUnreachable):
        dynamo.flush(config, client=dynamodb)
    # the other batches of the round landed and their files are gone; the next round never started
    assert sorted(sent) == [2, 25, 25, 25]  # and the markers of their two hours
    stored = {(item["pk"], item["sk"]) for item in table_items(dynamodb, config)}
    buffered = {path.name for path in store.pending()}
    assert len(stored) == 75 and len(buffered) == 85
    for reading in readings:  # each reading is in exactly one place
        assert (dynamo.minute_key(reading.device, reading.sensor, reading.ts) in stored) != (
            reading.file_name in buffered)
    monkeypatch.setattr(dynamo, "batch_write", original)
    assert dynamo.flush(config, client=dynamodb).sent == 85
    assert len(table_items(dynamodb, config)) == 160


def test_a_second_flush_finds_the_lock_and_only_buffers(dynamodb, config, caplog):
    store, _ = fill(config, 3)
    caplog.set_level(logging.INFO)
    with store.lock():
        assert dynamo.flush_and_report(config) is None
    assert store.count() == 3
    assert "another flush (or an aggregation) holds the buffer" in caplog.text
    with pytest.raises(filebuffer.BufferLocked), store.lock(), store.lock():
        pass


def test_bad_files_are_quarantined_and_never_block_the_others(dynamodb, config, caplog):
    store, _ = fill(config, 30)
    (store.directory / "20250621T185900.000000Z-alex_rpi-4.json").write_text("{not json")
    (store.directory / "20250621T185901.000000Z-alex_rpi-4.json").write_text('{"format": 1}')
    result = dynamo.flush(config, client=dynamodb)
    assert result.sent == 30 and store.count() == 0
    assert sorted(path.name for path in store.bad_dir.iterdir()) == [
        "20250621T185900.000000Z-alex_rpi-4.json", "20250621T185901.000000Z-alex_rpi-4.json"]
    assert caplog.text.count("moved bad buffer file") == 2


def test_an_unreachable_cloud_is_a_warning_and_the_readings_wait(aws_credentials, config, monkeypatch, caplog):
    from tests.conftest import free_port

    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    store, _ = fill(config, 3)
    assert dynamo.flush_and_report(config) is None
    assert store.count() == 3
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "DynamoDB unreachable, readings stay buffered (3 waiting)" in record.getMessage()
    assert record.quiet  # kept out of cron's mail


def test_missing_tables_are_a_configuration_error(mocked_aws, config):
    from utils import ConfigError

    fill(config, 1)
    with pytest.raises(ConfigError, match="run 'python dynamo.py create-tables'"):
        dynamo.flush(config)


def test_a_captive_portal_is_an_unreachable_cloud_not_a_failure(aws_credentials, config, monkeypatch, caplog):
    """A proxy or portal answering HTML 404 says nothing of DynamoDB: wait, don't mail."""
    import http.server
    import threading

    class Portal(http.server.BaseHTTPRequestHandler):
        def do_POST(self):
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            body = b"<html>Please log in to the hotel Wi-Fi</html>"
            self.send_response(404)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{server.server_address[1]}")
        store, _ = fill(config, 2)
        assert dynamo.flush_and_report(config) is None
    finally:
        server.shutdown()
    assert store.count() == 2
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert "without a DynamoDB error" in record.getMessage() and record.quiet
