"""`dynamo.py status` explains itself: what it found, how far back it looked, what waits and why."""

import datetime as dt

import pytest

import aggregate
import dynamo
import status
import filebuffer
import sensors

START = dt.datetime(2025, 6, 21, 22, 0, tzinfo=dt.timezone.utc)  # the README session's hours
END = START + dt.timedelta(hours=4)


@pytest.fixture
def stored(dynamodb, config):
    """The README session: pin 4 from 22:00 to 02:00 on the simulated schedule, flushed."""
    store = filebuffer.Buffer(config["buffer_dir"])
    minute = START
    while minute < END:
        store.write(filebuffer.Reading(config["device"], "4", minute,
                                       {"reading": sensors.simulated_pin_value(minute)}))
        minute += dt.timedelta(minutes=1)
    assert dynamo.flush(config, client=dynamodb).left == 0
    return dynamodb


def sensor_line(config, client, now, sensor="4"):
    lines = list(status.status_lines(config, client, now=now))
    (line,) = [line for line in lines if line.startswith(f"device {config['device']} sensor {sensor}:")]
    return line


def test_hours_waiting_and_the_hour_under_way_are_said_to_wait_for_their_run(stored, config):
    now = END - dt.timedelta(seconds=30)  # 01:59:30: the hour 01:00 is under way
    assert sensor_line(config, stored, now) == (
        "device alex_rpi sensor 4: newest reading 2025-06-22 01:59 UTC; 4 hours awaiting aggregation "
        "(the hour under way among them, which the first run after it ends aggregates); "
        "no hour aggregated yet")


def test_after_aggregating_status_names_the_newest_hour(stored, config):
    now = END + dt.timedelta(minutes=10)
    aggregate.aggregate(config, config["device"], client=stored, now=now)
    assert sensor_line(config, stored, now) == (
        "device alex_rpi sensor 4: newest reading 2025-06-22 01:59 UTC; 0 hours awaiting aggregation; "
        "newest aggregated hour 2025-06-22 01:00 UTC")


@pytest.mark.parametrize("days_later", [1, 100, 400])
def test_status_finds_the_newest_data_however_old_in_a_few_requests(stored, config, days_later):
    """The demo's and a replay's history is long past: status says what there is, in `timezone`,
    and its requests don't grow with the age of the data."""
    now, config = END + dt.timedelta(minutes=10), {**config, "timezone": "Europe/Kyiv"}
    aggregate.aggregate(config, config["device"], client=stored, now=now)
    requests = []
    stored.meta.events.register("before-call.dynamodb.*", lambda model, **kw: requests.append(model.name))
    later = END + dt.timedelta(days=days_later)
    assert sensor_line(config, stored, later) == (
        "device alex_rpi sensor 4: newest reading 2025-06-22 04:59 EEST; 0 hours awaiting aggregation; "
        "newest aggregated hour 2025-06-22 04:00 EEST")
    assert len(requests) <= 25, requests  # registry, latest, 1 minute partition, 13 months of days, 1 hour ...


def test_the_buffer_line_says_what_waits_for_what(config, dynamodb):
    store = filebuffer.Buffer(config["buffer_dir"])
    store.write(filebuffer.Reading(config["device"], "4", START + dt.timedelta(seconds=7), {"reading": 1}))
    first = next(iter(status.status_lines(config, dynamodb, now=END)))
    assert first == (f"buffer {config['buffer_dir']}: 1 reading waiting to be flushed, "
                     "oldest 2025-06-21 22:00 UTC; 0 held (clock or device name), 0 bad")
