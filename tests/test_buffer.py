"""The durable buffer: atomic writes, names, quarantine, rescue of interrupted writes, clocks."""

import datetime as dt
import json
import logging
import os
import time

import pytest

import filebuffer
from filebuffer import Buffer, InvalidReading, Reading, clock_problem, parse_reading

UTC = dt.timezone.utc
TS = dt.datetime(2025, 6, 21, 19, 0, 3, 241969, tzinfo=UTC)
READING = Reading("alex_rpi", "4", TS, {"reading": 1})


def test_a_reading_round_trips_and_its_name_sorts_by_time_without_colons(tmp_path):
    store = Buffer(tmp_path)
    path = store.write(READING)
    assert path.name == "20250621T190003.241969Z-alex_rpi-4.json"
    assert ":" not in path.name
    assert parse_reading(path.read_text()) == READING
    later = Reading("alex_rpi", "bme280", TS + dt.timedelta(minutes=1),
                    {"temperature_c": 21.5, "humidity_pct": 40.1, "pressure_hpa": 1013.25})
    earlier = Reading("alex_rpi", "4", TS - dt.timedelta(days=400), {"reading": 0})
    store.write(later), store.write(earlier)
    assert [store.load(p) for p in store.pending()] == [earlier, READING, later]


def test_writes_are_atomic_and_durable(tmp_path, monkeypatch):
    """temp file, fsync it, rename into place, fsync the directory: in that order."""
    events = []
    real_fsync, real_rename = os.fsync, os.rename

    def fsync(fd):
        events.append(("fsync", "dir" if os.path.isdir(f"/proc/self/fd/{fd}") else "file"))
        real_fsync(fd)

    def rename(source, target):
        events.append(("rename", os.path.basename(source).startswith(filebuffer.TEMP_PREFIX)))
        real_rename(source, target)

    monkeypatch.setattr(os, "fsync", fsync)
    monkeypatch.setattr(os, "rename", rename)
    Buffer(tmp_path).write(READING)
    assert events == [("fsync", "file"), ("rename", True), ("fsync", "dir")]
    assert [p.name for p in tmp_path.iterdir()] == [READING.file_name]


def test_a_failed_write_leaves_no_temp_file_and_says_why(tmp_path, monkeypatch):
    def full(fd, data):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    with pytest.raises(filebuffer.BufferError, match="No space left on device"):
        Buffer(tmp_path).write(READING)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content, reason", [
    (b"", "not JSON"),
    (b'{"format": 1, "device": "alex_rpi", "sens', "not JSON"),
    (b"\x00\xff\xfe binary", "can't decode"),
    (b'[1, 2]', "not a JSON object"),
    (b'{"format": 2, "device": "alex_rpi", "sensor": "4", "ts": "2025-06-21T19:00:00+00:00", "reading": 1}',
     "format 2 is not 1"),
    (b'{"format": 1, "device": "alex_rpi", "sensor": "4", "ts": "2025-06-21T19:00:00+00:00"}',
     "reading None is not 0 or 1"),
    (b'{"format": 1, "device": "alex_rpi", "sensor": "4", "ts": "2025-06-21T19:00:00+00:00", "reading": "1"}',
     "reading '1' is not 0 or 1"),
    (b'{"format": 1, "device": "a#b", "sensor": "4", "ts": "2025-06-21T19:00:00+00:00", "reading": 1}',
     "device 'a#b' is not valid"),
    (b'{"format": 1, "device": "alex_rpi", "sensor": "4", "ts": "2025-06-21T19:00:00", "reading": 1}',
     "has no offset"),
    (b'{"format": 1, "device": "alex_rpi", "sensor": "4\\n", "ts": "2025-06-21T19:00:00+00:00", "reading": 1}',
     "is not a pin number"),
    (b'{"format": 1, "device": "alex_rpi\\n", "sensor": "4", "ts": "2025-06-21T19:00:00+00:00", "reading": 1}',
     "device 'alex_rpi\\n' is not valid"),
    (b'{"format": 1, "device": "alex_rpi", "sensor": "4", "ts": "0001-01-01T00:00:00+00:00", "reading": 1}',
     "is before 2024"),
    (b'{"format": 1, "device": "alex_rpi", "sensor": "bme280", "ts": "2025-06-21T19:00:00+00:00", '
     b'"temperature_c": 1e308, "humidity_pct": 50.0, "pressure_hpa": 1000.0}', "temperature_c 1e+308 is outside"),
    (b'{"format": 1, "device": "alex_rpi", "sensor": "bme280", "ts": "2025-06-21T19:00:00+00:00", '
     b'"temperature_c": "warm", "humidity_pct": 40, "pressure_hpa": 1000}', "temperature_c is 'warm'"),
])
def test_invalid_files_move_to_bad_with_one_log_line(tmp_path, caplog, content, reason):
    store = Buffer(tmp_path)
    good = store.write(READING)
    bad = tmp_path / "20250621T185900.000000Z-alex_rpi-4.json"
    bad.write_bytes(content)
    assert [store.load(path) for path in store.pending()] == [None, READING]
    assert [p.name for p in store.bad_dir.iterdir()] == [bad.name]
    (record,) = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert bad.name in record.getMessage() and reason in record.getMessage()
    assert good.exists()


def test_parse_reading_rejects_unexpected_fields():
    document = json.loads(READING.to_json())
    document["extra"] = 1
    with pytest.raises(InvalidReading, match="unexpected fields"):
        parse_reading(json.dumps(document))


def test_a_stale_temp_file_is_put_back_and_a_fresh_one_left_alone(tmp_path):
    stale = tmp_path / f"{filebuffer.TEMP_PREFIX}123-456-{READING.file_name}"
    stale.write_text(READING.to_json())
    old = time.time() - filebuffer.STALE_TEMP_SECONDS - 5
    os.utime(stale, (old, old))
    fresh = tmp_path / f"{filebuffer.TEMP_PREFIX}124-457-20250621T190100.000000Z-alex_rpi-4.json"
    fresh.write_text("{")
    store = Buffer(tmp_path)
    assert [p.name for p in store.pending()] == [READING.file_name]
    assert fresh.exists()


@pytest.mark.parametrize("ts, synced, problem", [
    (dt.datetime(1970, 1, 1, 0, 1, tzinfo=UTC), True, "before 2024"),
    (dt.datetime(2023, 12, 31, 23, 59, tzinfo=UTC), True, "before 2024"),
    (dt.datetime(2025, 6, 23, 0, 0, 1, tzinfo=UTC), True, "more than a day after"),
    (dt.datetime(2025, 6, 21, 19, tzinfo=UTC), False, "not been synchronised"),
    (dt.datetime(2025, 6, 21, 19, tzinfo=UTC), True, None),
    (dt.datetime(2024, 1, 1, tzinfo=UTC), True, None),
])
def test_clock_problems(tmp_path, ts, synced, problem):
    timesync = tmp_path / "timesync"
    timesync.mkdir()
    if synced:
        (timesync / "synchronized").touch()
    found = clock_problem(ts, now=dt.datetime(2025, 6, 21, 23, tzinfo=UTC), timesync_dir=timesync)
    assert (problem in found) if problem else found is None


def test_a_held_reading_keeps_its_values_and_the_reason(tmp_path):
    store = Buffer(tmp_path)
    path = store.hold(READING, "clock reads 1970")
    document = json.loads(path.read_text())
    assert document["held_because"] == "clock reads 1970" and document["reading"] == 1
    assert store.pending() == [] and store.count("held") == 1


def test_the_lock_is_exclusive_and_released(tmp_path):
    store = Buffer(tmp_path)
    with store.lock():
        with pytest.raises(filebuffer.BufferLocked):
            with Buffer(tmp_path).lock():
                pass
        with Buffer(tmp_path).lock(".aggregate.lock"):  # another lock name is independent
            pass
    with store.lock():
        pass
