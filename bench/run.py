"""`make bench`: cost and speed against the naive per-item design, written to BENCHMARKS.md.

    python bench/run.py                      # full sizes, >= 5 runs each, writes BENCHMARKS.md
    python bench/run.py --smoke --output X   # tiny sizes, 2 runs (the test suite's smoke run)
    python bench/run.py --only aggregation   # one section; its figures printed, BENCHMARKS.md untouched
    python bench/run.py --only minute --rewrite   # the minute section, rewritten in place in BENCHMARKS.md

Everything runs against moto's server on 127.0.0.1. Ratios are taken run by run, ours and the
baseline side by side in the same run, then summarised as min / median / max.
"""

import argparse
import contextlib
import datetime as dt
import json
import math
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(PROJECT_DIR))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import aggregate  # noqa: E402
import aggregation  # noqa: E402
import baseline  # noqa: E402
import dynamo  # noqa: E402
import filebuffer  # noqa: E402
import mirror  # noqa: E402
import sensors  # noqa: E402
import utils  # noqa: E402
import watchdog_bench  # noqa: E402

UTC = dt.timezone.utc
DEVICE = "bench_rpi"
START = dt.datetime(2025, 6, 1, tzinfo=UTC)
ZONES = ("UTC", "Europe/Kyiv", "Asia/Kolkata")  # the user's day: UTC, whole hours with DST, +05:30
SECTIONS = ("flush", "link", "aggregation", "scaling", "minute", "units", "parquet", "watchdog")
# DynamoDB on-demand, us-east-1, since the price cut of November 2024 (aws.amazon.com/dynamodb/pricing/on-demand,
# as quoted by airbyte.com on 2025-07-21): per million request units, and per GB-month stored.
PRICE_DATE = "2024-11 (us-east-1 on-demand)"
PRICE_WRU, PRICE_RRU, PRICE_GB_MONTH = 0.625 / 1e6, 0.125 / 1e6, 0.25
FULL = {"runs": 5, "flush": 10_000, "link_flush": 1000, "rtt": 0.02, "day_minutes": 1440, "week_minutes": 7 * 1440, "week_runs": 5, "week_baseline_runs": 1, "history": (1, 7, 30), "new_hours": 5}
SMOKE = {"runs": 2, "flush": 60, "link_flush": 30, "rtt": 0.005, "day_minutes": 120, "week_minutes": 180, "week_runs": 1, "week_baseline_runs": 1, "history": (1, 2), "new_hours": 2,
         "smoke": True}


def spread(values, digits=3):
    values = sorted(values)
    return (f"{round(values[0], digits)} / {round(statistics.median(values), digits)} / "
            f"{round(values[-1], digits)}")


class Counter:
    """Requests a client makes (by operation) and the time spent inside them."""

    def __init__(self, client):
        self.calls, self.in_requests, self._started = [], 0.0, {}
        self.responses = []
        client.meta.events.register("before-call.dynamodb.*", self._before)
        client.meta.events.register("after-call.dynamodb.*", self._after)

    def _before(self, model, params, **kwargs):
        self.calls.append(model.name)
        self._started[model.name] = (time.perf_counter(), params)

    def _after(self, model, parsed, **kwargs):
        started, params = self._started.pop(model.name, (time.perf_counter(), {}))
        self.in_requests += time.perf_counter() - started
        self.responses.append((model.name, parsed, params))

    def reset(self):
        self.calls, self.in_requests, self.responses = [], 0.0, []


def fresh_tables(client, legacy=False):
    """New tables; `legacy`: as earlier versions made them, with status-index (the baseline's)."""
    config = {"table_prefix": f"b-{uuid.uuid4().hex[:10]}", "device": DEVICE, "retention_days": None,
              "buffer_dir": Path(tempfile.mkdtemp(prefix="bench-buffer-")), "log_dir": Path(tempfile.mkdtemp())}
    if legacy:
        for name in dynamo.table_names(config["table_prefix"]).values():
            client.create_table(**dynamo.legacy_table_definition(name))
    dynamo.create_tables(config, client)
    return config


def pin_items(start, minutes, new=True, legacy=False):
    """Minute items as the flush writes them, then (new) the markers of their hours; `legacy`:
    marked new by pk_status instead, as earlier versions did (the baseline reads the index)."""
    items, hours = [], {}
    for minute in range(minutes):
        ts = start + dt.timedelta(minutes=minute, seconds=2, microseconds=123456)
        item = dynamo.minute_item(filebuffer.Reading(DEVICE, "4", ts, {"reading": sensors.simulated_pin_value(ts)}))
        if legacy:
            item["pk_status"] = {"S": dynamo.status_key(DEVICE, "4")}
        items.append(item)
        hours[ts.replace(minute=0, second=0, microsecond=0)] = True
    if new and not legacy:
        items += [dynamo.marker_item(DEVICE, "4", hour, utils.utc_now()) for hour in hours]
    return items


def register(client, config, sensor="4"):
    pk, sk = dynamo.registry_key(DEVICE, sensor)
    client.put_item(TableName=dynamo.table_names(config["table_prefix"])["minutes"],
                    Item={"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": DEVICE}, "sensor": {"S": sensor}})


# --- 1. flush ---------------------------------------------------------------------------------

def flush_goal(readings):
    """Requests a flush of `readings` needs at most: a batch per 25 readings, one batch of the
    markers of their hours per round (FLUSH_WORKERS batches; a backlog's round spans few hours),
    the registry's PutItem and the sensor's `latest` PutItem (once per sensor and hour)."""
    per_round = dynamo.BATCH_LIMIT * dynamo.FLUSH_WORKERS
    return math.ceil(readings / dynamo.BATCH_LIMIT) + math.ceil(readings / per_round) + 2


def bench_flush(client, size, readings, send_client=None):
    """Flush `readings` buffered readings, ours and the naive design side by side in each run.

    Tables are made through `client`; the readings go through `send_client` (a client whose
    endpoint is behind a slow link), or `client` itself.
    """
    send_client = send_client or client
    rows = []
    for _run in range(size["runs"]):
        figures = {}
        for design in ("ours", "naive"):
            config = fresh_tables(client)
            store = filebuffer.Buffer(config["buffer_dir"])
            for minute in range(readings):
                ts = START + dt.timedelta(minutes=minute, seconds=1)
                store.write(filebuffer.Reading(DEVICE, "4", ts, {"reading": minute % 2}))
            counter = Counter(send_client)
            started = time.perf_counter()
            if design == "ours":
                result = dynamo.flush(config, budget=3600, client=send_client)
                assert result.sent == readings, result
            else:
                baseline.naive_flush(send_client, dynamo.table_names(config["table_prefix"])["minutes"],
                                     config["buffer_dir"])
            figures[design] = (time.perf_counter() - started, len(counter.calls))
            send_client.meta.events.unregister("before-call.dynamodb.*", counter._before)
            send_client.meta.events.unregister("after-call.dynamodb.*", counter._after)
        rows.append(figures)
    ours_requests = [row["ours"][1] for row in rows]
    return {
        "readings": readings,
        "ours_requests": spread(ours_requests, 0), "naive_requests": spread([r["naive"][1] for r in rows], 0),
        "ours_seconds": spread([r["ours"][0] for r in rows]), "naive_seconds": spread([r["naive"][0] for r in rows]),
        "speedup": spread([r["naive"][0] / r["ours"][0] for r in rows], 1),
        # a batch per 25 readings, a batch of markers per round of FLUSH_WORKERS batches, the registry
        "goal_requests": max(ours_requests) <= flush_goal(readings),
        "goal_speed": statistics.median(r["naive"][0] / r["ours"][0] for r in rows) >= 10,
    }


# --- 2. aggregation ---------------------------------------------------------------------------

def aggregate_once(client, minutes, now, design, start=START, timezone=None):
    config = dict(fresh_tables(client, legacy=design != "ours"), timezone=timezone)
    register(client, config)
    dynamo.put_all(client, [(dynamo.table_names(config["table_prefix"])["minutes"], item)
                            for item in pin_items(start, minutes, legacy=design != "ours")])
    if design == "ours":  # the tables' first run looks once for a legacy index: not the steady cost
        aggregate.legacy.upgrade(client, dynamo.table_names(config["table_prefix"]), DEVICE, lambda: [],
                                 config["buffer_dir"])
    counter = Counter(client)
    started = time.perf_counter()
    if design == "ours":
        aggregate.aggregate(config, DEVICE, client=client, now=now)
    else:
        baseline.naive_aggregate(client, dynamo.table_names(config["table_prefix"]), DEVICE, "4", now)
    elapsed = time.perf_counter() - started
    client.meta.events.unregister("before-call.dynamodb.*", counter._before)
    client.meta.events.unregister("after-call.dynamodb.*", counter._after)
    return elapsed, len(counter.calls)


def bench_aggregation(client, size):
    out = {}
    for label, minutes, runs, baseline_runs in (("day", size["day_minutes"], size["runs"], size["runs"]),
                                                ("week", size["week_minutes"], size["week_runs"],
                                                 size["week_baseline_runs"])):
        now = START + dt.timedelta(minutes=minutes + 60)
        ours = [aggregate_once(client, minutes, now, "ours") for _ in range(runs)]
        naive = [aggregate_once(client, minutes, now, "naive") for _ in range(baseline_runs)]
        hours = minutes // 60
        out[label] = {
            "hours": hours, "runs": runs, "baseline_runs": baseline_runs,
            "ours_per_hour": spread([r / hours for _, r in ours], 2),
            "naive_per_hour": spread([r / hours for _, r in naive], 2),
            "ours_seconds": spread([t for t, _ in ours]), "naive_seconds": spread([t for t, _ in naive]),
            "fewer": round(statistics.median(r for _, r in naive) / statistics.median(r for _, r in ours), 1),
        }
    out["zones"] = bench_zones(client, size)
    return out


def bench_zones(client, size):
    """Requests per aggregated sensor-day, a week of readings from local midnight, by the zone
    of the user's day: UTC, a whole-hour zone with DST, a :30 zone (edges read from minutes)."""
    minutes, figures = size["week_minutes"], {}
    for name in ZONES:
        start = aggregation.day_window(START.date(), utils.zone(name))[0]
        requests = [aggregate_once(client, minutes, start + dt.timedelta(minutes=minutes + 60), "ours", start, name)[1]
                    for _ in range(size["week_runs"])]
        figures[name] = [r * 1440 / minutes for r in requests]
    return {name: {"per_day": spread(per_day, 1),
                   "vs_utc": round(statistics.median(per_day) / statistics.median(figures["UTC"]), 3)}
            for name, per_day in figures.items()}


def history(client, config, days):
    """`days` of aggregated history (minutes consumed, hours and days stored) before START."""
    tables = dynamo.table_names(config["table_prefix"])
    first = START - dt.timedelta(days=days)
    writes = [(tables["minutes"], item) for item in pin_items(first, days * 1440, new=False)]
    readings = [(dynamo.period_start(i["pk"]["S"], i["sk"]["S"]), int(i["reading"]["N"])) for _, i in writes]
    runs = aggregation.off_runs(readings)
    for day in range(days):
        day_start = first + dt.timedelta(days=day)
        hours = []
        for hour in range(24):
            start = day_start + dt.timedelta(hours=hour)
            of_hour = readings[(day * 24 + hour) * 60:(day * 24 + hour + 1) * 60]
            previous = readings[(day * 24 + hour) * 60 - 1][1] if day or hour else None
            stats = aggregation.pin_stats(of_hour, start, start + dt.timedelta(hours=1), START, previous, runs)
            hours.append(stats)
            writes.append((tables["hours"], dynamo.consumed(dynamo.hour_item(DEVICE, "4", start, stats, START))))
        stats = {**dynamo.day_attributes(day_start, utils.zone()),
                 **aggregation.day_stats("4", hours, day_start, day_start + dt.timedelta(days=1), START)}
        writes.append((tables["days"], dynamo.day_item(DEVICE, "4", day_start.date(), stats, START)))
    dynamo.put_all(client, writes)


def bench_scaling(client, size):
    out = {}
    for days in size["history"]:
        config = fresh_tables(client)
        register(client, config)
        history(client, config, days)
        tables = dynamo.table_names(config["table_prefix"])
        aggregate.legacy.upgrade(client, tables, DEVICE, lambda: [], config["buffer_dir"])  # once per table
        walls, own, requests, read_units = [], [], [], []
        for number in range(size["new_hours"]):
            hour = START + dt.timedelta(hours=number)
            dynamo.put_all(client, [(tables["minutes"], item) for item in pin_items(hour, 60)])
            counter = Counter(client)
            started = time.perf_counter()
            aggregate.aggregate(config, DEVICE, client=client, now=hour + dt.timedelta(minutes=65))
            wall = time.perf_counter() - started
            walls.append(wall)
            own.append(wall - counter.in_requests)
            requests.append(len(counter.calls))
            read_units.append(query_read_units(counter.responses))
            client.meta.events.unregister("before-call.dynamodb.*", counter._before)
            client.meta.events.unregister("after-call.dynamodb.*", counter._after)
        out[days] = {"wall": walls, "own": own, "requests": requests, "read_units": read_units}
    return out


# --- sizes and units --------------------------------------------------------------------------

def attribute_size(name, value):
    """DynamoDB's documented item size: name bytes plus value bytes (numbers: about 1 byte per
    two significant digits, plus 1)."""
    (kind, raw), = value.items()
    if kind == "S":
        return len(name.encode()) + len(raw.encode())
    digits = len(raw.replace("-", "").replace(".", "").lstrip("0")) or 1
    return len(name.encode()) + math.ceil(digits / 2) + 1


def item_size(item):
    return sum(attribute_size(name, value) for name, value in item.items())


def query_read_units(responses):
    """Read units of the queries: per request, started 4 KB of returned items; eventually
    consistent index queries cost half."""
    units = 0.0
    for operation, parsed, params in responses:
        if operation != "Query":
            continue
        size = sum(item_size(item) for item in parsed.get("Items", []))
        units += max(1, math.ceil(size / 4096)) * (1 if params.get("ConsistentRead") else 0.5)
    return units


LEGACY_LIFE = {  # the design before markers (issue 27), per reading, as BENCHMARKS.md measured it
    "stored (PutItem of the minute item)": 1, "indexed (status-index entry written)": 1,
    "consumed (re-put without pk_status)": 1, "consumed (status-index entry deleted)": 1,
}


class WriteUnits:
    """Write units of every write request a client sends, by DynamoDB's rules: a put costs 1 per
    started KB of the item written, a delete the size of the item it deletes (the markers this
    bench deletes are the ones it wrote), by table."""

    def __init__(self, client):
        self.by_table, self.sizes = {}, {}
        client.meta.events.register("before-parameter-build.dynamodb.*", self._before)

    def _add(self, table, item=None, key=None):
        if item is not None:
            size = item_size(item)
            self.sizes[(table, item["pk"]["S"], item["sk"]["S"])] = size
        else:
            size = self.sizes.get((table, key["pk"]["S"], key["sk"]["S"]), 1)
        self.by_table.setdefault(table, []).append(max(1, math.ceil(size / 1024)))

    def _before(self, model, params, **kwargs):
        if model.name == "BatchWriteItem":
            for table, requests in params["RequestItems"].items():
                for request in requests:
                    if "PutRequest" in request:
                        self._add(table, item=request["PutRequest"]["Item"])
                    else:
                        self._add(table, key=request["DeleteRequest"]["Key"])
        elif model.name == "PutItem":
            self._add(params["TableName"], item=params["Item"])
        elif model.name == "DeleteItem":
            self._add(params["TableName"], key=params["Key"])


def write_units(client, hours=3):
    """A reading's write units over its life, measured: a pin and a BME280 read every minute for
    `hours` hours, each minute flushed as cron does (the clock at :30 of the minute), the hourly
    aggregation at :05 past each hour (the last at :05 after the last hour, so every reading's
    marker is gone); every write request counted by item size. The minutes
    table's units are the readings' (minute items, their markers written and deleted); the
    hours and days tables' are the aggregation's."""
    config = fresh_tables(client)
    tables = dynamo.table_names(config["table_prefix"])
    store = filebuffer.Buffer(config["buffer_dir"])
    units = WriteUnits(client)
    start = dt.datetime(2025, 6, 21, 10, tzinfo=UTC)
    real_now = dynamo.utc_now
    readings = 0
    try:
        for minute in range(hours * 60 + 6):  # up to :05 after the last hour
            ts = start + dt.timedelta(minutes=minute, seconds=1)
            dynamo.utc_now = lambda ts=ts: ts + dt.timedelta(seconds=29)
            if minute < hours * 60:
                store.write(filebuffer.Reading(DEVICE, "4", ts, {"reading": sensors.simulated_pin_value(ts)}))
                store.write(filebuffer.Reading(DEVICE, "bme280", ts, sensors.simulated_environment(ts)))
                readings += 2
                dynamo.flush(config, client=client)
            if minute % 60 == 5 and minute > 60:
                aggregate.aggregate(config, DEVICE, client=client, now=ts)
    finally:
        dynamo.utc_now = real_now
    registry = 2  # the sensors' registry items, once a day: not a reading's cost
    # every hour's marker was deleted by the run at :05 after it: each reading's life is over
    assert aggregate.legacy is not None and not any(
        dynamo.markers(client, tables["minutes"], DEVICE, sensor) for sensor in ("4", "bme280"))
    minutes_units = sum(units.by_table.get(tables["minutes"], [])) - registry
    per_reading = minutes_units / readings
    pin = dynamo.minute_item(filebuffer.Reading(DEVICE, "4", START, {"reading": 1}), retention_days=400)
    env = dynamo.minute_item(filebuffer.Reading(DEVICE, "bme280", START, sensors.simulated_environment(START)),
                             retention_days=400)
    marker = dynamo.marker_item(DEVICE, "bme280", START, START)
    aggregate_units = sum(units.by_table.get(tables["hours"], [])) + sum(units.by_table.get(tables["days"], []))
    return {"pin_bytes": item_size(pin), "env_bytes": item_size(env), "marker_bytes": item_size(marker),
            "readings": readings, "hours": hours, "minutes_units": minutes_units,
            "per_reading": round(per_reading, 3), "aggregate_units_per_sensor_hour": round(
                aggregate_units / (2 * hours), 2), "legacy_life": LEGACY_LIFE,
            "legacy_per_reading": sum(LEGACY_LIFE.values())}


# --- 3. the minute job ------------------------------------------------------------------------

# A small launcher forks the measured process: a child forked from this (large) process would
# report this process's memory as its own peak before it execs.
LAUNCHER = ("import resource, subprocess, sys, time; t = time.perf_counter(); "
            "code = subprocess.run(sys.argv[1:], stdout=subprocess.DEVNULL).returncode; "
            "print(time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, code)")


def measure_process(command, env):
    """(wall seconds, peak RSS in MiB) of one run of `command`."""
    done = subprocess.run([sys.executable, "-S", "-c", LAUNCHER, *command], env=env, capture_output=True, text=True)
    elapsed, peak_kib, code = done.stdout.split()
    if code != "0":
        raise SystemExit(f"bench: {command} failed: {done.stderr}")
    return float(elapsed), int(peak_kib) / 1024


def bench_minute_job(endpoint, size):
    workdir = Path(tempfile.mkdtemp(prefix="bench-minute-"))
    (workdir / "config.toml").write_text("")
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, BLACKOUT_TABLE_PREFIX="bench-minute",
               BLACKOUT_BUFFER_DIR=str(workdir / "buffer"), BLACKOUT_LOG_DIR=str(workdir / "logs"),
               BLACKOUT_CONFIG=str(workdir / "config.toml"), BLACKOUT_DEVICE=DEVICE)
    subprocess.run([sys.executable, str(PROJECT_DIR / "dynamo.py"), "create-tables"], env=env, check=True,
                   capture_output=True)
    # On a Pi the first cron run leaves the modules' bytecode in __pycache__, as pip did for
    # boto3's; compile them here too, or every measured run would compile them from source
    # (this machine sets PYTHONDONTWRITEBYTECODE).
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-l", str(PROJECT_DIR)], check=True)
    bare = ("import boto3; boto3.client('dynamodb').put_item(TableName='bench-minute-minutes', "
            "Item={'pk': {'S': 'device#bench_rpi#sensor#4#date#2025-06-01-00'}, 'sk': {'S': 'time#00'}})")
    commands = {
        "read_pin.py --simulate": [sys.executable, str(PROJECT_DIR / "read_pin.py"), "--pin", "4", "--simulate"],
        "read_env.py --simulate": [sys.executable, str(PROJECT_DIR / "read_env.py"), "--simulate"],
        "bare boto3 PutItem": [sys.executable, "-c", bare],
    }
    results = {name: [] for name in commands}
    for _run in range(size["runs"]):
        for name, command in commands.items():  # side by side, in the same run
            results[name].append(measure_process(command, env))
    ratios = {}
    for name in ("read_pin.py --simulate", "read_env.py --simulate"):
        ratios[name] = {
            "wall": [ours[0] / bare[0] for ours, bare in zip(results[name], results["bare boto3 PutItem"])],
            "rss": [ours[1] / bare[1] for ours, bare in zip(results[name], results["bare boto3 PutItem"])],
        }
    importtime = subprocess.run([sys.executable, "-X", "importtime", str(PROJECT_DIR / "read_pin.py"), "--pin", "4",
                                 "--simulate", "--no-flush"], env=env, capture_output=True, text=True).stderr
    imports = []
    for line in importtime.splitlines():
        if line.startswith("import time:") and "|" in line:
            _self, cumulative, name = line[len("import time:"):].split("|")
            if cumulative.strip().isdigit():
                imports.append((int(cumulative), name.rstrip()))
    return {"results": results, "ratios": ratios, "imports": sorted(imports, reverse=True)[:12]}


# --- 3b. a cron minute: run-parts over cron.minutes.pi, as installed ---------------------------

# Runs `run-parts --report DIR` and prints, as JSON, what it and its children cost: CPU (user +
# sys), wall, peak RSS, bytes they caused to be written to a block device (/proc/self/io counts a
# reaped child's I/O in its parent's), and what run-parts printed (cron mails that).
CRON_LAUNCHER = (
    "import json, resource, subprocess, sys, time\n"
    "def written():\n"
    "    for line in open('/proc/self/io'):\n"
    "        if line.startswith('write_bytes:'):\n"
    "            return int(line.split()[1])\n"
    "before, t = written(), time.perf_counter()\n"
    "done = subprocess.run(['run-parts', '--report', sys.argv[1]], capture_output=True, text=True)\n"
    "wall, usage = time.perf_counter() - t, resource.getrusage(resource.RUSAGE_CHILDREN)\n"
    "print(json.dumps({'wall': wall, 'cpu': usage.ru_utime + usage.ru_stime, 'rss': usage.ru_maxrss / 1024,\n"
    "                  'written': written() - before, 'code': done.returncode, 'said': done.stdout + done.stderr}))\n"
)
OFFLINE_ENDPOINTS = {  # the endpoint unreachable three ways
    "refused": "http://127.0.0.1:{closed_port}",
    "DNS failing": "http://blackout-bench.invalid:4566",
    "no route": "http://[2001:db8::1]:4566",
}


@contextlib.contextmanager
def bench_filesystem():
    """(directory, diskstats name): the buffer and logs on an ext4 of their own on a loop device
    (root only), so /proc/diskstats counts only the minute's writes, journal included; else a
    temporary directory and None."""
    workdir = Path(tempfile.mkdtemp(prefix="bench-cron-"))
    image, mount = workdir / "sd.img", workdir / "sd"
    mounted = False
    if os.geteuid() == 0:
        mount.mkdir()
        with open(image, "wb") as handle:
            handle.truncate(64 << 20)
        made = subprocess.run(["mkfs.ext4", "-q", "-E", "lazy_itable_init=0,lazy_journal_init=0", str(image)],
                              capture_output=True)
        mounted = made.returncode == 0 and subprocess.run(
            ["mount", "-o", "loop,noatime", str(image), str(mount)], capture_output=True).returncode == 0
    try:
        if not mounted:
            yield workdir, None
            return
        source = subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(mount)], capture_output=True,
                                text=True).stdout.strip()
        yield mount, Path(source).name
    finally:
        if mounted:
            subprocess.run(["umount", str(mount)], check=False)
        image.unlink(missing_ok=True)  # 64 MiB


def sectors_written(device, directory):
    """Bytes written to `device` so far, once `directory`'s filesystem is synced."""
    if device is None:
        return 0
    subprocess.run(["sync", "-f", str(directory)], check=True)
    for line in Path("/proc/diskstats").read_text().splitlines():
        fields = line.split()
        if fields[2] == device:
            return int(fields[9]) * 512
    raise SystemExit(f"bench: {device} not in /proc/diskstats")


def run_parts_dir(root, name, scripts):
    """A run-parts directory of sh scripts {name: command line}."""
    directory = root / name
    directory.mkdir()
    for script, command in scripts.items():
        path = directory / script
        path.write_text(f"#!/bin/sh\nexec {command}\n")
        path.chmod(0o755)
    return directory


QUEUED = "refused, a message queued: one attempt at a closed webhook"


def seed_queued_message(buffer_dir):
    """A power message waiting in the Pi's queue, as a minute that saw the power go leaves it."""
    import notify

    state = notify.new_state(DEVICE, "4", 1, START)
    state["since_known"] = True
    _state, message = notify.advance(state, 0, START + dt.timedelta(minutes=1), 1)
    notify._write_json(notify.notify_dir(buffer_dir) / "queue", notify._message_name(message), message)


def bench_cron_minute(endpoint, size):
    """A cron minute with both sensors (relay + BME280), run-parts and its children measured."""
    with bench_filesystem() as (root, device):
        return _bench_cron_minute(endpoint, size, root, device)


def _bench_cron_minute(endpoint, size, root, device):
    (root / "config.toml").write_text("pin = 4\n")
    table = "bench-cron-minutes"
    env = dict(os.environ, AWS_ENDPOINT_URL=endpoint, BLACKOUT_TABLE_PREFIX="bench-cron",
               BLACKOUT_BUFFER_DIR=str(root / "buffer"), BLACKOUT_LOG_DIR=str(root / "logs"),
               BLACKOUT_CONFIG=str(root / "config.toml"), BLACKOUT_DEVICE=DEVICE,
               PYTHON=sys.executable, PROJECT_DIR=str(PROJECT_DIR), OPTIONS="--simulate")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([sys.executable, str(PROJECT_DIR / "dynamo.py"), "create-tables"], env=env, check=True,
                   capture_output=True)
    subprocess.run([sys.executable, "-m", "compileall", "-q", "-l", str(PROJECT_DIR)], check=True)
    scripts = root / "scripts"
    scripts.mkdir()
    python, project = shlex.quote(sys.executable), shlex.quote(str(PROJECT_DIR))
    seed, floor = shlex.quote(baseline.SEED_PROCESS), shlex.quote(baseline.FLOOR_PROCESS)
    layouts = {
        "seed": run_parts_dir(scripts, "seed", {
            "blackout-monitor": f"{python} -c {seed} {table} 4",
            "env-monitor": f"{python} -c {seed} {table} bme280"}),
        "floor": run_parts_dir(scripts, "floor", {"blackout-monitor": f"{python} -c {floor} {table}"}),
        "two processes": run_parts_dir(scripts, "two", {
            "blackout-monitor": f"{python} {project}/read_pin.py --pin 4 --simulate",
            "env-monitor": f"{python} {project}/read_env.py --simulate"}),
        "ours": PROJECT_DIR / "cron_example" / "cron.minutes.pi",
    }

    def minute(layout, run_env=env):
        before = sectors_written(device, root)
        done = subprocess.run([sys.executable, "-S", "-c", CRON_LAUNCHER, str(layouts[layout])], env=run_env,
                              capture_output=True, text=True)
        figures = json.loads(done.stdout)
        if figures["code"] or figures["said"]:
            raise SystemExit(f"bench: {layout} minute failed or was not quiet: {figures['said']}")
        figures["device"] = sectors_written(device, root) - before
        return figures

    # Offline: the endpoint unreachable three ways, each with a buffer of its own, so that its
    # minutes run side by side with the online ones, in the same run.
    away = {}
    for number, (kind, template) in enumerate(OFFLINE_ENDPOINTS.items()):
        away[kind] = dict(env, AWS_ENDPOINT_URL=template.format(closed_port=free_port()),
                          BLACKOUT_BUFFER_DIR=str(root / f"buffer-offline-{number}"),
                          BLACKOUT_LOG_DIR=str(root / f"logs-offline-{number}"))
    # Refused, with a message waiting for a webhook whose port is closed too: each minute makes
    # one attempt (its backoff cleared before it), what an attempt costs while offline (#22).
    queued = dict(away["refused"], BLACKOUT_WEBHOOK_URL=f"http://127.0.0.1:{free_port()}/hook",
                  BLACKOUT_BUFFER_DIR=str(root / "buffer-offline-queued"), BLACKOUT_LOG_DIR=str(root / "logs-offline-queued"))
    away[QUEUED] = queued
    seed_queued_message(Path(queued["BLACKOUT_BUFFER_DIR"]))
    backoff = Path(queued["BLACKOUT_BUFFER_DIR"]) / "notify" / "channels.json"

    def offline_minute(kind):
        if kind == QUEUED:
            backoff.unlink(missing_ok=True)
        return minute("ours", away[kind])

    for layout in layouts:  # warm up: page cache, the registry items of the day
        minute(layout)
    for kind in away:  # the minute that finds the link down
        offline_minute(kind)
    online = {layout: [] for layout in layouts}
    offline = {kind: [] for kind in away}  # of "ours"
    for _run in range(size["runs"]):
        for layout in layouts:  # side by side, in the same run
            online[layout].append(minute(layout))
        for kind in away:
            offline[kind].append(offline_minute(kind))
    return {"online": online, "offline": offline, "device": device}


def cron_minute_lines(cron):
    online, offline = cron["online"], cron["offline"]

    def each(layout, key, runs=None):
        return [figures[key] for figures in (runs or online[layout])]

    def ratio(ours, other, key="cpu"):
        return [a[key] / b[key] for a, b in zip(ours, other)]

    ours = online["ours"]
    to_seed, to_floor = ratio(ours, online["seed"]), ratio(ours, online["floor"])
    floor_to_seed = ratio(online["floor"], online["seed"])
    names = {"seed": "seed: two bare processes, boto3 + one PutItem each",
             "floor": "floor: one process, one boto3 import, one BatchWriteItem of both",
             "two processes": "read_pin.py and read_env.py, a process each (the layout before #14)",
             "ours": "cron_example/cron.minutes.pi as installed"}
    lines = [
        "",
        "### A cron minute with both sensors",
        "",
        "`run-parts --report` over a directory of minute scripts, relay and BME280 (`--simulate`), against",
        "moto on loopback; CPU is user + sys of run-parts and its children. Bytes written: what the",
        "processes caused to be written to a block device (`/proc/self/io` `write_bytes`)"
        + (", and what the buffer's own ext4 on a loop device received, journal included, once synced"
           " (`/proc/diskstats`)." if cron["device"] else "."),
        "",
        "| minute | CPU seconds | wall seconds | peak RSS MiB | bytes written per reading | device bytes per reading |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for layout, runs in online.items():
        per_reading = 2 if layout in ("two processes", "ours") else None
        written = spread([f["written"] / per_reading for f in runs], 0) if per_reading else "(no buffer)"
        device = (spread([f["device"] / per_reading for f in runs], 0)
                  if per_reading and cron["device"] else "")
        lines.append(f"| {names[layout]} | {spread(each(layout, 'cpu'))} | {spread(each(layout, 'wall'))} | "
                     f"{spread(each(layout, 'rss'), 1)} | {written} | {device} |")
    for kind, runs in offline.items():
        device = spread([f["device"] / 2 for f in runs], 0) if cron["device"] else ""
        lines.append(f"| ours, offline ({kind}) | {spread(each('ours', 'cpu', runs))} | "
                     f"{spread(each('ours', 'wall', runs))} | {spread(each('ours', 'rss', runs), 1)} | "
                     f"{spread([f['written'] / 2 for f in runs], 0)} | {device} |")
    online_cpu = {kind: ratio(runs, ours) for kind, runs in offline.items()}
    lines += [
        "",
        f"CPU of an online minute, ours / seed, run by run: **{spread(to_seed, 2)}** (goal <= 0.6: "
        f"{'met' if statistics.median(to_seed) <= 0.6 else 'missed'}); ours / floor: **{spread(to_floor, 2)}** "
        f"(the floor itself is {spread(floor_to_seed, 2)} of the seed).",
        f"Wall, ours / the two-process layout: {spread(ratio(ours, online['two processes'], 'wall'), 2)}; "
        f"peak RSS: {spread(ratio(ours, online['two processes'], 'rss'), 2)}.",
        "Written to the card per reading, ours / the two-process layout: page writes "
        f"{spread(ratio(ours, online['two processes'], 'written'), 2)}"
        + (f", device bytes {spread(ratio(ours, online['two processes'], 'device'), 2)}" if cron["device"] else "")
        + " (every reading still fsynced, renamed and its directory fsynced before the flush).",
        "CPU of an offline minute (the link known down), ours / our online minute: "
        + "; ".join(f"{kind} **{spread(values, 2)}**" for kind, values in online_cpu.items() if kind != QUEUED)
        + " (goal <= 0.25)"
        + (f"; with a message queued, a minute that makes one attempt (at most one per channel per backoff "
           f"period, 30 s doubling to 5 min) **{spread(online_cpu[QUEUED], 2)}**" if QUEUED in online_cpu else "")
        + ". Before #14, measured the same way, an offline minute cost refused 0.86 / 1.02 / 1.19,"
        " DNS failing 0.89 / 1.1 / 1.22, no route 0.95 / 1.24 / 1.28 of its online one.",
        "",
        "What makes the difference: the installed minute is one process, `read_pin.py --all-sensors`, whose",
        "flush sends both readings in one BatchWriteItem (the registry's PutItem is written once a day).",
        "Its client is botocore's, made from a botocore session: the same client `boto3.client()`",
        "returns, without boto3's session and its resource hooks, which is how it can cost less than the",
        "floor. While the link is known down (`buffer/.link-down.json`), a minute probes the endpoint",
        "with a TCP connection and stops there: no botocore, and no channels.py unless a message waits",
        "(then it is tried, each channel with its own backoff: the queued row is one such attempt). One minute an hour",
        "still tries a full flush (about 1/60 of an online minute more, on average). Before #14, measured",
        "the same way, the installed minute cost 0.85 / 1.18 / 1.43 of the seed's CPU and",
        "41,472 / 41,472 / 44,032 device bytes per reading; page writes were 8,192 per reading, as now:",
        "the two reading files, the pin's notification state and the log's page. What is left per minute",
        "is mostly the ext4 journal: a commit for each fsync (each reading, the buffer directory once,",
        "the pin's state file and its directory, the directory once more after the flush's deletions).",
    ]
    return lines


# --- 5. Parquet -------------------------------------------------------------------------------

def bench_parquet(size):
    import duckdb

    root = Path(tempfile.mkdtemp(prefix="bench-parquet-"))
    days = 2 if size.get("smoke") else 30
    total = {"4": 0, "bme280": 0}
    for day in range(days):
        day_start = START + dt.timedelta(days=day)
        for sensor in total:
            items = []
            for minute in range(1440):
                ts = day_start + dt.timedelta(minutes=minute, seconds=2, microseconds=123456)
                values = ({"reading": sensors.simulated_pin_value(ts)} if sensor == "4"
                          else sensors.simulated_environment(ts))
                items.append(dynamo.plain(dynamo.minute_item(filebuffer.Reading(DEVICE, sensor, ts, values))))
            data = mirror.parquet_bytes(mirror.to_table("minutes", sensor, items))
            mirror.write_local(root, mirror.partition_path("minutes", DEVICE, sensor, day_start.date()), data)
            total[sensor] += len(data)
    query = (f"SELECT date, count(*), sum(reading) FROM read_parquet('{root}/minutes/*/*/*/*.parquet', "
             f"hive_partitioning = true, union_by_name = true) WHERE sensor = '4' GROUP BY date ORDER BY date")
    seconds = []
    for _run in range(size["runs"]):
        started = time.perf_counter()
        rows = duckdb.sql(query).fetchall()
        seconds.append(time.perf_counter() - started)
    assert len(rows) == days
    return {"days": days, "bytes": total, "query_seconds": spread(seconds)}


# --- the report -------------------------------------------------------------------------------

MINUTE_HEADING, NEXT_HEADING = "## 3. The minute job", "## 4. "


def minute_section(minute, cron):
    """The lines of section 3, from its heading to the blank line before section 4."""
    pin, env = minute["ratios"]["read_pin.py --simulate"], minute["ratios"]["read_env.py --simulate"]
    lines = [
        MINUTE_HEADING,
        "",
        "| process | wall seconds | peak RSS MiB |",
        "| --- | --- | --- |",
    ]
    for name, values in minute["results"].items():
        lines.append(f"| `{name}` | {spread([v[0] for v in values])} | {spread([v[1] for v in values], 1)} |")
    lines += [
        "",
        f"Ratios to the bare PutItem, run by run: read_pin wall {spread(pin['wall'], 2)}, RSS "
        f"{spread(pin['rss'], 2)}; read_env wall {spread(env['wall'], 2)}, RSS {spread(env['rss'], 2)} "
        "(goal <= 1.2).",
        *cron_minute_lines(cron),
        "",
        "Top imports of `read_pin.py --simulate --no-flush` (`python -X importtime`, cumulative microseconds):",
        "",
        "```",
        *[f"{micros:>8}  {name}" for micros, name in minute["imports"]],
        "```",
        "",
    ]
    return lines


def replace_minute_section(text, minute, cron):
    """BENCHMARKS.md's text with section 3 measured again (`--only minute`)."""
    start, end = text.index(MINUTE_HEADING), text.index(NEXT_HEADING)
    return text[:start] + "\n".join(minute_section(minute, cron)) + "\n" + text[end:]


def report(size, flush, link, aggregation_, scaling, minute, cron, units, parquet):
    ratio_30 = [w30 / w1 for w30, w1 in zip(scaling[max(scaling)]["wall"], scaling[min(scaling)]["wall"])]
    own_30 = [o30 / o1 for o30, o1 in zip(scaling[max(scaling)]["own"], scaling[min(scaling)]["own"])]
    billed_ratio = max(statistics.median(scaling[max(scaling)][key]) / statistics.median(scaling[min(scaling)][key])
                       for key in ("requests", "read_units"))
    steady_requests = statistics.median(scaling[min(scaling)]["requests"][1:] or scaling[min(scaling)]["requests"])
    read_units_hour = statistics.median(scaling[min(scaling)]["read_units"])
    readings_month = 2 * 30 * 1440  # one pin and one BME280
    # Measured per sensor-hour (hours and days tables), plus the day's end: its 24 hours' markers
    # deleted (24 / 24 runs), which the measured hours don't reach.
    aggregate_wru_hour = units["aggregate_units_per_sensor_hour"] + 1
    wru_month = readings_month * units["per_reading"] + 2 * 30 * 24 * aggregate_wru_hour
    rru_month = 2 * 30 * 24 * read_units_hour
    storage_gb = 30 * 1440 * (units["pin_bytes"] + units["env_bytes"] + 2 * 100) / 1e9
    cost = wru_month * PRICE_WRU + rru_month * PRICE_RRU + storage_gb * PRICE_GB_MONTH
    lines = [
        "# Benchmarks",
        "",
        f"Machine: {platform.node()}, {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, {platform.platform()}. Date: {dt.datetime.now(UTC):%Y-%m-%d %H:%M} UTC.",
        "Endpoint: moto's server on 127.0.0.1 (its timings are moto's, not DynamoDB's; request counts and",
        "units are the project's own). Figures are min / median / max over the runs; ratios are taken run by",
        f"run, side by side. `make bench` regenerates this file{' (smoke sizes)' if size.get('smoke') else ''}.",
        "",
        "## 1. Flush",
        "",
        f"{flush['readings']:,} buffered readings, {size['runs']} runs, straight to the endpoint on loopback.",
        "",
        "| design | requests | seconds |",
        "| --- | --- | --- |",
        f"| ours: BatchWriteItem of 25, {dynamo.FLUSH_WORKERS} in flight, then the round's markers (+1 registry, +1 latest PutItem) | "
        f"{flush['ours_requests']} | {flush['ours_seconds']} |",
        f"| naive: one PutItem per reading | {flush['naive_requests']} | {flush['naive_seconds']} |",
        "",
        f"Speed-up, naive time / ours, per run: **{flush['speedup']}** (goal >= 10: "
        f"{'met' if flush['goal_speed'] else 'missed'}). Requests: goal <= {flush_goal(flush['readings'])} "
        f"({'met' if flush['goal_requests'] else 'missed'}).",
        "",
        "On loopback a request costs only moto's own work, so this ratio is bounded by what moto",
        "spends per item, the same in both designs. A Pi pays a round trip to its AWS region per",
        f"request; the same comparison through a link that adds {link['rtt'] * 1000:.0f} ms of round trip",
        f"(bench/slowlink.py, a delaying proxy on 127.0.0.1), {link['readings']:,} readings, {size['runs']} runs:",
        "",
        "| design | requests | seconds |",
        "| --- | --- | --- |",
        f"| ours | {link['ours_requests']} | {link['ours_seconds']} |",
        f"| naive | {link['naive_requests']} | {link['naive_seconds']} |",
        "",
        f"Speed-up over the link, per run: **{link['speedup']}** (goal >= 10: "
        f"{'met' if link['goal_speed'] else 'missed'}).",
        "",
        "## 2. Aggregation",
        "",
        "| new minutes | design | requests per sensor-hour | seconds | runs |",
        "| --- | --- | --- | --- | --- |",
    ]
    for label, figures in ((label, figures) for label, figures in aggregation_.items() if label != "zones"):
        lines.append(f"| one sensor-{label} ({figures['hours']} h) | ours | {figures['ours_per_hour']} | "
                     f"{figures['ours_seconds']} | {figures['runs']} |")
        lines.append(f"| one sensor-{label} | baseline: UpdateItem per item, index re-queried per hour | "
                     f"{figures['naive_per_hour']} | {figures['naive_seconds']} | {figures['baseline_runs']} |")
    lines += [
        "",
        "Fewer requests, baseline / ours (medians): " + ", ".join(
            f"sensor-{label} **{figures['fewer']}x**" for label, figures in aggregation_.items()
            if label != "zones") + " (goal >= 10).",
        "",
        "By the zone of the user's day (`timezone`): a sensor-week of readings from local midnight,",
        f"aggregated in one run, {size['week_runs']} runs. A day in a whole-hour zone is made of whole UTC hours",
        "(a days item overlaps two hours partitions, read once each for the run); in a :30 zone the two",
        "hours it shares with its neighbours are read from their minutes.",
        "",
        "| timezone | requests per aggregated sensor-day | / UTC (medians) |",
        "| --- | --- | --- |",
        *[f"| {name} | {figures['per_day']} | {figures['vs_utc']} |" for name, figures in aggregation_["zones"].items()],
        "",
        "Scaling: one new hour aggregated on top of N days of history (the steady hourly run; each hour",
        f"measured {size['new_hours']} times). *Own time* is wall time minus the time inside requests.",
        "",
        "| history | requests per run | wall seconds | own seconds | read units |",
        "| --- | --- | --- | --- | --- |",
    ]
    for days, figures in scaling.items():
        lines.append(f"| {days} days | {spread(figures['requests'], 0)} | {spread(figures['wall'])} | "
                     f"{spread(figures['own'])} | {spread(figures['read_units'], 1)} |")
    lines += [
        "",
        f"Ratio {max(scaling)}-day / {min(scaling)}-day, run by run: wall {spread(ratio_30, 2)}, own time "
        f"{spread(own_30, 2)} (goal <= 1.2). The requests are the same whatever the history: the cost follows the",
        "new items. moto's wall time grows with the table because moto answers an index query by scanning",
        "the whole table; DynamoDB reads only the index partition. What DynamoDB bills, requests and read",
        f"units, grows {billed_ratio:.2f}x (medians). The own time (a few milliseconds) grows a little because a run reads",
        "the month's days partition, which a 30-day history fills (30 items instead of 1); it holds at",
        "most 31, so a longer history costs no more (reasoned from the queries, not measured past 30 days).",
        "",
        *minute_section(minute, cron),
        "## 4. Write and read units, cost",
        "",
        f"Item sizes by DynamoDB's rules: pin minute {units['pin_bytes']} B, BME280 minute {units['env_bytes']} B, "
        f"marker of a new hour {units['marker_bytes']} B. Measured: a pin and a BME280 read and flushed every minute",
        f"for {units['hours']} hours ({units['readings']} readings), aggregated at :05 past each hour; every write request",
        "counted by the size of the item it writes or deletes (1 unit per started KB): the minutes table took",
        f"{units['minutes_units']} units (minute items, and each hour's marker written once and deleted once).",
        "",
        "| design | write units per reading over its life |",
        "| --- | --- |",
        f"| before (status-index: stored, indexed, re-put, index entry deleted) | {units['legacy_per_reading']} |",
        f"| **markers of new hours** | **{units['per_reading']}** (goal <= 1.15) |",
        "",
        f"Aggregation per sensor-hour: {units['aggregate_units_per_sensor_hour']} write units measured (hours and",
        "days items rewritten, the markers of the hours of the day under way), plus 1 for the day's end",
        f"(its 24 markers deleted once a day), {aggregate_wru_hour / 60:.2f} per reading; read units measured per",
        f"steady run: {read_units_hour:.1f} ({steady_requests:.0f} requests).",
        "",
        f"Per device-month (one pin + one BME280, {readings_month:,} readings): {wru_month:,.0f} write units, "
        f"{rru_month:,.0f} read units, {storage_gb * 1000:.1f} MB more storage. At on-demand prices of "
        f"{PRICE_DATE}: ${PRICE_WRU * 1e6:.3f} per million WRU, ${PRICE_RRU * 1e6:.3f} per million RRU, "
        f"${PRICE_GB_MONTH}/GB-month: **${cost:.3f} per device-month** (storage accumulates unless "
        "`retention_days` is set; the first 25 GB are in the free tier).",
        "",
        "## 5. Parquet",
        "",
        f"{parquet['days']} days of minutes (zstd): pin {parquet['bytes']['4']:,} B, BME280 "
        f"{parquet['bytes']['bme280']:,} B, together {sum(parquet['bytes'].values()):,} B"
        + (" per device-month." if parquet["days"] == 30 else "."),
        f"DuckDB, uptime per day over those files (hive partitioning): {parquet['query_seconds']} s.",
        "",
    ]
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--smoke", action="store_true", help="tiny sizes, to check the benchmarks run")
    parser.add_argument("--output", default=str(PROJECT_DIR / "BENCHMARKS.md"))
    parser.add_argument("--only", action="append", choices=SECTIONS, metavar="SECTION",
                        help=f"run only this section ({', '.join(SECTIONS)}; repeatable) and print its figures")
    parser.add_argument("--rewrite", action="store_true",
                        help="with --only minute: also rewrite that section of --output in place")
    args = parser.parse_args(argv)
    if args.rewrite and "minute" not in (args.only or ()):
        parser.error("--rewrite needs --only minute")
    size = SMOKE if args.smoke else FULL
    port = free_port()
    # Its own process, as DynamoDB is: a server thread in this process would share its GIL with
    # the client being measured and slow both.
    server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    wait_for_port(port, server)
    endpoint = f"http://127.0.0.1:{port}"
    os.environ.update({"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
                       "AWS_DEFAULT_REGION": "us-east-1"})
    try:
        client = dynamo.aws_client()
        steps = {}
        for name, step in (("flush", lambda: bench_flush(client, size, size["flush"])),
                           ("link", lambda: bench_link_flush(client, port, size)),
                           ("aggregation", lambda: bench_aggregation(client, size)),
                           ("scaling", lambda: bench_scaling(client, size)),
                           ("minute", lambda: bench_minute_job(endpoint, size)),
                           ("cron", lambda: bench_cron_minute(endpoint, size)),
                           ("units", lambda: write_units(client)),
                           ("parquet", lambda: bench_parquet(size)),
                           ("watchdog", lambda: watchdog_bench.bench(watchdog_bench.SMOKE if size.get("smoke") else
                                                                     watchdog_bench.FULL, query_read_units))):
            if args.only and name not in args.only and not (name == "cron" and "minute" in args.only):
                continue
            started = time.perf_counter()
            steps[name] = step()
            print(f"bench: {name} done in {time.perf_counter() - started:.0f}s", file=sys.stderr)
        if args.only:
            if args.rewrite and "minute" in steps:
                output = Path(args.output)
                output.write_text(replace_minute_section(output.read_text(), steps["minute"], steps["cron"]))
                print(f"bench: rewrote the minute section of {args.output}", file=sys.stderr)
            print(json.dumps(steps, indent=1, default=str))
            return 0
        Path(args.output).write_text(report(size, steps["flush"], steps["link"], steps["aggregation"], steps["scaling"],
                                            steps["minute"], steps["cron"], steps["units"], steps["parquet"])
                                     + "\n" + watchdog_bench.section(steps["watchdog"], spread))
        print(f"bench: wrote {args.output}", file=sys.stderr)
    finally:
        server.terminate()
        try:
            server.wait(10)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
    return 0


def wait_for_port(port, process, timeout=120.0):  # moto's import alone takes seconds on a Pi
    import socket

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"bench: moto's server exited with {process.returncode}")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise SystemExit(f"bench: moto's server did not answer on port {port}")


def bench_link_flush(client, port, size):
    """bench_flush through a link with a round trip of size['rtt'] seconds."""
    from slowlink import SlowLink

    with SlowLink(port, size["rtt"]) as link:
        saved = os.environ["AWS_ENDPOINT_URL"]
        os.environ["AWS_ENDPOINT_URL"] = link.url
        try:
            send_client = dynamo.aws_client()
        finally:
            os.environ["AWS_ENDPOINT_URL"] = saved
        return {**bench_flush(client, size, size["link_flush"], send_client), "rtt": size["rtt"]}


def free_port():
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


if __name__ == "__main__":
    sys.exit(main())
