"""The watchdog's cost and speed (BENCHMARKS.md section 6): requests and read units per device
per run, cost per device-month at a one-minute schedule, the handler's time for 1, 100 and
1,000 watched devices against moto's server.

Run alone with `python bench/run.py --only watchdog` (prints the figures).
"""

import datetime as dt
import os
import statistics
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dynamo  # noqa: E402
import watchdog  # noqa: E402
from filebuffer import Reading  # noqa: E402

UTC = dt.timezone.utc
NOW = dt.datetime(2025, 6, 21, 22, 30, 30, tzinfo=UTC)
RUNS_PER_MONTH = 30 * 24 * 60  # a run a minute, 30 days
# AWS Lambda, us-east-1, arm64 (aws.amazon.com/lambda/pricing, as published since 2022):
PRICE_LAMBDA_REQUEST = 0.20 / 1e6
PRICE_LAMBDA_GB_SECOND = 0.0000133334
LAMBDA_MEMORY_MB = 1024  # MemorySize in infra/template.yaml
VCPU_MB = 1769  # Lambda gives a function one vCPU per 1,769 MB (a share of one below that)
DYNAMODB_REQUEST_SECONDS = 0.010  # assumed in-region round trip of a Query, for the estimate only
FULL = {"devices": (1, 100, 1000), "runs": 3, "history_days": 7}
SMOKE = {"devices": (1, 3), "runs": 1, "history_days": 1}


class Recorder:
    """Every DynamoDB request of every client made through dynamo.aws_client, thread-safe:
    the watchdog queries from several threads at once."""

    def __init__(self):
        self.lock = threading.Lock()
        self.responses = []

    def attach(self, client):
        def before(params, context, **kwargs):
            context["bench_params"] = params

        def after(model, parsed, context, **kwargs):
            with self.lock:
                self.responses.append((model.name, parsed, context.get("bench_params", {})))

        client.meta.events.register("before-call.dynamodb.*", before)
        client.meta.events.register("after-call.dynamodb.*", after)
        return client

    def take(self):
        with self.lock:
            taken, self.responses = self.responses, []
        return taken


def populate(client, table, devices, minutes=2, history_days=0):
    """Each device: its two registry items and the last `minutes` readings of a pin and a
    BME280 (all healthy), or `history_days` of them."""
    count = max(minutes, history_days * 1440)
    items = []
    for device in devices:
        for sensor in ("4", "bme280"):
            pk, sk = dynamo.registry_key(device, sensor)
            items.append((table, {"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": device}, "sensor": {"S": sensor}}))
            for i in range(count):
                ts = NOW - dt.timedelta(minutes=count - i)
                values = {"reading": 1} if sensor == "4" else {"temperature_c": 21.0, "humidity_pct": 40.0,
                                                               "pressure_hpa": 1010.0}
                items.append((table, dynamo.minute_item(Reading(device, sensor, ts, values))))
    dynamo.put_all(client, items)


def batch_get_units(responses):
    """Read units of BatchGetItem: each item's size rounded up to 4 KB, strongly consistent."""
    from run import attribute_size

    def size(item):  # run.item_size, with the list of sensors (each element: its bytes + 1)
        return sum(len(name) + 3 + sum(len(element["S"]) + 1 for element in value["L"]) if "L" in value
                   else attribute_size(name, value) for name, value in item.items())

    return sum(max(1, -(-size(item) // 4096)) for operation, parsed, _params in responses
               if operation == "BatchGetItem" for items in parsed.get("Responses", {}).values() for item in items)


def handler_run(recorder, prefix, devices):
    """One Lambda invocation as the schedule makes it; (wall seconds, CPU seconds, responses)."""
    os.environ.update({"BLACKOUT_WATCH": " ".join(devices), "BLACKOUT_TABLE_PREFIX": prefix})
    recorder.take()
    started, cpu = time.perf_counter(), time.process_time()
    result = watchdog.handler({"at": NOW.isoformat()}, None)
    seconds, cpu = time.perf_counter() - started, time.process_time() - cpu
    assert result["checked"] == len(devices) and result["announced"] == [], result
    return seconds, cpu, recorder.take()


def bench(size, query_read_units):
    """The figures of section 6. `query_read_units` is run.py's (DynamoDB's documented rounding)."""
    recorder = Recorder()
    original = dynamo.aws_client
    dynamo.aws_client = lambda *args, **kwargs: recorder.attach(original(*args, **kwargs))
    for name in [name for name in os.environ if name.startswith("BLACKOUT_")]:
        del os.environ[name]
    try:
        client = original()
        rows = []
        for count in size["devices"]:
            prefix = f"wd{uuid.uuid4().hex[:8]}"
            dynamo.create_tables({"table_prefix": prefix}, client)
            devices = [f"rpi{n:04d}" for n in range(count)]
            populate(client, f"{prefix}-minutes", devices)
            times, cpus, requests, units = [], [], [], []
            handler_run(recorder, prefix, devices)  # the first run records each device's sensors
            for _ in range(size["runs"]):
                seconds, cpu, responses = handler_run(recorder, prefix, devices)
                times.append(seconds)
                cpus.append(cpu)
                requests.append(len(responses) / count)
                units.append((query_read_units(responses) + batch_get_units(responses)) / count)
            rows.append({"devices": count, "seconds": times, "cpu": cpus, "requests": requests, "units": units,
                         "items": count * 7})  # 2 x 2 readings, 2 registry items, the state
        # flat in table size: one device with days of history costs the same per run
        prefix = f"wd{uuid.uuid4().hex[:8]}"
        dynamo.create_tables({"table_prefix": prefix}, client)
        populate(client, f"{prefix}-minutes", ["history"], history_days=size["history_days"])
        handler_run(recorder, prefix, ["history"])
        _seconds, _cpu, responses = handler_run(recorder, prefix, ["history"])
        history = {"days": size["history_days"], "requests": len(responses),
                   "units": query_read_units(responses) + batch_get_units(responses)}
    finally:
        dynamo.aws_client = original
        for name in ("BLACKOUT_WATCH", "BLACKOUT_TABLE_PREFIX"):
            os.environ.pop(name, None)
    return {"rows": rows, "history": history, "runs": size["runs"]}


def section(figures, spread):
    rows, history = figures["rows"], figures["history"]
    lines = [
        "## 6. Watchdog",
        "",
        f"One handler invocation (`watchdog.handler`, as the schedule calls it) over N healthy devices "
        f"(a pin and a BME280 each), {figures['runs']} runs each, against moto's server; up to "
        f"{watchdog.WORKERS} devices are checked at once on one client.",
        "",
        "| devices | items in the table | wall seconds per run | handler CPU seconds | DynamoDB requests per device "
        "| read units per device |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(f"| {row['devices']:,} | {row['items']:,} | {spread(row['seconds'])} | {spread(row['cpu'])} | "
                     f"{spread(row['requests'], 2)} | {spread(row['units'], 2)} |")
    big = rows[-1]
    median_big = statistics.median(big["seconds"])
    lines += [
        "",
        f"{big['devices']:,} devices: **{median_big:.2f} s** of wall time per run (median; goal < 10 s: "
        f"{'met' if median_big < 10 else 'missed'}), of which the handler's own CPU "
        f"{statistics.median(big['cpu']):.2f} s. Wall time per device: "
        + ", ".join(f"{row['devices']:,}: {1000 * statistics.median(row['seconds']) / row['devices']:.1f} ms"
                    for row in rows) + ". "
        "moto answers every Query by going through all the items of the table (moto/dynamodb/models/table.py), "
        "so its time per Query grows with the table (here each device has only its 2 newest readings per "
        "sensor, its registry and its state); DynamoDB reads only the key range asked for.",
        f"A device with {history['days']} days of readings: {history['requests']} requests and "
        f"{history['units']} read units per run, the same as a fresh one: each run asks the state item and "
        "the newest reading in the last minutes' key range (Query with a sort-key range, Limit 1), never the "
        "table or an hour's whole partition.",
        "",
        "Per healthy device and run: its share of a BatchGetItem of 100 state items (strongly consistent) and "
        "one Query for a fresh reading (the pin; the BME280 only when the pin has none); the sensors are kept "
        "in the state item, written once at first sight. A silent device also asks the registry each run (new "
        "sensors). A silence costs more once: the walk back to its last reading (one Query per hour back), and "
        "the return one Query per hour of the silence for the pin readings that tell the cause, plus a PutItem "
        "per state change.",
        "",
    ]
    units = statistics.median(big["units"])
    cpu_per_device = statistics.median(big["cpu"]) / big["devices"]
    vcpu = min(1.0, LAMBDA_MEMORY_MB / VCPU_MB)
    waiting = statistics.median(big["requests"]) * big["devices"] * DYNAMODB_REQUEST_SECONDS / watchdog.WORKERS
    estimate = statistics.median(big["cpu"]) / vcpu + waiting
    lines += [
        f"On Lambda against DynamoDB (an estimate, not measured): the {statistics.median(big['cpu']):.2f} s of CPU "
        f"on {vcpu:.2f} vCPU ({LAMBDA_MEMORY_MB} MB) plus {waiting:.1f} s waiting on requests "
        f"({DYNAMODB_REQUEST_SECONDS * 1000:.0f} ms each, {watchdog.WORKERS} in flight) is about "
        f"**{estimate:.1f} s** for {big['devices']:,} devices (goal < 10 s: {'met' if estimate < 10 else 'missed'}).",
        "",
    ]
    seconds_per_device = cpu_per_device / vcpu + waiting / big["devices"]
    dynamo_month = units * RUNS_PER_MONTH * 0.125 / 1e6  # PRICE_RRU of run.py: $0.125 per million
    compute_month = seconds_per_device * LAMBDA_MEMORY_MB / 1024 * RUNS_PER_MONTH * PRICE_LAMBDA_GB_SECOND
    requests_month = RUNS_PER_MONTH * PRICE_LAMBDA_REQUEST
    lines += [
        "Cost at a run a minute (43,200 runs in 30 days), on-demand prices in us-east-1 (DynamoDB $0.125 per "
        f"million read units; Lambda arm64 $0.20 per million requests, $0.0000133334 per GB-second, "
        f"{LAMBDA_MEMORY_MB} MB), no free tier:",
        "",
        "| part | per device-month |",
        "| --- | --- |",
        f"| DynamoDB reads ({units:.2f} read units a run) | ${dynamo_month:.4f} |",
        f"| Lambda compute ({1000 * seconds_per_device:.1f} ms a device a run: its CPU time on {vcpu:.2f} vCPU "
        f"and its share of the waiting, as estimated above) | ${compute_month:.4f} |",
        f"| Lambda requests (${requests_month:.4f} a month for the whole function, shared) | "
        f"${requests_month:.4f} alone, ${requests_month / 100:.5f} with 100 devices |",
        f"| **total**, one device alone / one of 100 | **${dynamo_month + compute_month + requests_month:.4f}** / "
        f"**${dynamo_month + compute_month + requests_month / 100:.4f}** |",
        "",
        "State writes happen only when a device's state changes (a silence costs 2-4 PutItems), so they add "
        "nothing measurable. Cost per run is linear in devices (about one request each) and flat in table size.",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit("run it through bench/run.py (--only watchdog)")
