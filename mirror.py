"""The Parquet mirror: minutes, hours and days as Hive-partitioned files, to S3 and/or a folder.

    {prefix}/minutes/device={d}/sensor={s}/date=YYYY-MM-DD/data.parquet
    {prefix}/hours/device={d}/sensor={s}/date=YYYY-MM-DD/data.parquet
    {prefix}/days/device={d}/sensor={s}/month=YYYY-MM/data.parquet

A touched partition is rewritten whole from DynamoDB, so late data lands and a rerun writes
the same bytes. Columns: `ts` (UTC timestamp), for hours and days `start` (the hour or day the
row covers: `ts` there is when it was computed), then the reading or statistics columns,
typed. Minutes and hours partitions are UTC dates; days are the user's days in `timezone`,
partitioned by local month, and their `start` is local midnight (as a UTC timestamp). Only
the hourly job and the notebook import this module (pyarrow is heavy); the minute path never
does.
"""

import datetime as dt
import io
import json
import logging
import os
import sys
from pathlib import Path

import aggregation
import dynamo
import filebuffer
from filebuffer import BME280_QUANTITIES
from utils import zone

log = logging.getLogger("mirror")

KINDS = ("minutes", "hours", "days")
FILE_NAME = "data.parquet"
COMPRESSION = "zstd"
INT_STATS = ("count", "expected", "unknown")
PIN_STATS = (("on", "int"), ("off", "int"), ("uptime", "float"), ("outages", "int"),
             ("longest_outage_minutes", "int"))
# against the published schedule (schedule.py; empty without one): minutes, then the windows
# used and each outage's record, as JSON text
SCHEDULE_STATS = (("scheduled", "int"), ("off_scheduled", "int"), ("off_unscheduled", "int"),
                  ("on_scheduled", "int"), ("schedule", "json"), ("schedule_possible", "json"),
                  ("outage_schedule", "json"))


def columns(kind, sensor):
    """[(name, 'int' | 'float')] of a kind of file, after `ts` (and `start`)."""
    pin = sensor != filebuffer.BME280_SENSOR
    if kind == "minutes":
        return [("reading", "int")] if pin else [(q, "float") for q in BME280_QUANTITIES]
    stats = [(name, "int") for name in INT_STATS]
    if pin:
        return stats + list(PIN_STATS) + list(SCHEDULE_STATS)
    return stats + [(f"{q}_{s}", "float") for q in BME280_QUANTITIES for s in ("min", "max", "mean")]


def schema(kind, sensor):
    import pyarrow as pa

    types = {"int": pa.int64(), "float": pa.float64(), "json": pa.string()}
    fields = [pa.field("ts", pa.timestamp("us", tz="UTC"))]
    if kind != "minutes":
        fields.append(pa.field("start", pa.timestamp("us", tz="UTC")))
    fields += [pa.field(name, types[kind_]) for name, kind_ in columns(kind, sensor)]
    return pa.schema(fields)


def to_table(kind, sensor, items):
    """A pyarrow Table of plain items (dynamo.plain) in period order."""
    import pyarrow as pa

    rows = sorted(items, key=lambda item: dynamo.period_start(item["pk"], item["sk"]))
    data = {"ts": [dt.datetime.fromisoformat(item["ts"]) for item in rows]}
    if kind == "hours":
        data["start"] = [dynamo.period_start(item["pk"], item["sk"]) for item in rows]
    elif kind == "days":
        data["start"] = [dynamo.day_start(item) for item in rows]
    for name, type_ in columns(kind, sensor):
        cast = {"int": int, "float": float, "json": lambda value: json.dumps(value, ensure_ascii=False)}[type_]
        data[name] = [None if item.get(name) is None else cast(item[name]) for item in rows]
    return pa.Table.from_pydict(data, schema=schema(kind, sensor))


def parquet_bytes(table):
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink, compression=COMPRESSION)
    return sink.getvalue()


def day_months(dates, zone):
    """The local months (dates on the 1st) of the user's days that the UTC `dates` overlap."""
    return {local.replace(day=1) for day in dates
            for local in aggregation.local_dates(*utc_day(day), zone)}


def utc_day(day):
    start = dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)
    return start, start + dt.timedelta(days=1)


def partition_path(kind, device, sensor, day):
    """The partition's path below the mirror's root, e.g. minutes/device=d/sensor=4/date=2025-06-21
    (for days, `day` is a local date: month= is the local month)."""
    period = f"month={day:%Y-%m}" if kind == "days" else f"date={day:%Y-%m-%d}"
    return f"{kind}/device={device}/sensor={sensor}/{period}/{FILE_NAME}"


def partition_items(client, tables, kind, device, sensor, day):
    """Every item of the partition, read whole (ConsistentRead: it may have just been written)."""
    start = utc_day(day)[0]
    if kind == "minutes":
        keys = [dynamo.minute_key(device, sensor, start + dt.timedelta(hours=h))[0] for h in range(24)]
    elif kind == "hours":
        keys = [dynamo.hour_key(device, sensor, start)[0]]
    else:
        keys = [dynamo.day_key(device, sensor, start)[0]]
    items = []
    for pk in keys:
        items += [dynamo.plain(item) for item in dynamo.query_all(
            client, TableName=tables[kind], ConsistentRead=True, KeyConditionExpression="pk = :pk",
            ExpressionAttributeValues={":pk": {"S": pk}})]
    return items


def write_local(root, relative, data):
    """Temp file, fsync, rename, fsync the directory: a reader sees the old file or the new."""
    path = Path(root) / relative
    path.parent.mkdir(parents=True, exist_ok=True)
    temp = path.with_name(f".tmp-{os.getpid()}-{FILE_NAME}")
    with open(temp, "wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temp, path)
    filebuffer._fsync_dir(path.parent)
    return path


def export(config, device, sensor, dates, client=None, s3=None):
    """Rewrite the minutes and hours partitions of each UTC date, and the days partitions of the
    local months its hours fall in.

    Returns the paths written (relative to the mirror's root), one per partition.
    """
    client = client or dynamo.aws_client()
    tables = dynamo.table_names(config["table_prefix"])
    bucket, prefix, root = config.get("s3_bucket"), config.get("s3_prefix") or "", config.get("parquet_dir")
    if bucket and s3 is None:
        s3 = dynamo.aws_client("s3")
    partitions = {(kind, day) for day in dates for kind in ("minutes", "hours")}
    partitions |= {("days", month) for month in day_months(dates, zone(config.get("timezone")))}
    written = []
    for kind, day in sorted(partitions, key=lambda partition: (partition[1], KINDS.index(partition[0]))):
        items = partition_items(client, tables, kind, device, sensor, day)
        if not items:
            continue
        relative = partition_path(kind, device, sensor, day)
        data = parquet_bytes(to_table(kind, sensor, items))
        if root:
            write_local(root, relative, data)
        if bucket:
            key = f"{prefix}/{relative}" if prefix else relative
            dynamo.call(s3.put_object, None, Bucket=bucket, Key=key, Body=data)  # one PUT: atomic
        written.append(relative)
    log.info("mirrored %d partitions of %s sensor %s", len(written), device, sensor)
    return written


def backfill(config, device, sensors, start, end, client=None, progress=None):
    """Rewrite the mirror for every date from `start` to `end` (inclusive) of each sensor.

    A progress bar (tqdm) shows on a terminal; under cron (no terminal) it stays silent.
    """
    dates = [start + dt.timedelta(days=n) for n in range((end - start).days + 1)]
    client = client or dynamo.aws_client()
    if progress is None:
        progress = sys.stderr.isatty()
    steps = [(sensor, day) for sensor in sensors for day in dates]
    if progress:
        from tqdm import tqdm

        steps = tqdm(steps, desc="mirror", unit="day")
    written = []
    for sensor, day in steps:
        written += export(config, device, sensor, [day], client=client)
    log.info("backfilled %d partitions of %s from %s to %s", len(written), device, start, end)
    return written


# --- reading it back (the notebook) -----------------------------------------------------------

def read(source, kind, device, sensor, start, end, config=None, timezone=None):
    """A pandas DataFrame of one sensor's minutes, hours or days from `start` to `end`: local
    dates in `timezone` (default UTC), the rows of those days.

    `source` is a local mirror folder, `s3://bucket/prefix`, or "dynamodb" (then `config`
    names the tables and boto3's chain the endpoint).
    """
    import pyarrow as pa

    low, high = aggregation.day_window(start, zone(timezone))[0], aggregation.day_window(end, zone(timezone))[1]
    if kind == "days":
        dates, month = [], start.replace(day=1)
        while month <= end:  # the local months
            dates.append(month)
            month = (month + dt.timedelta(days=31)).replace(day=1)
    else:  # the UTC dates that hold the local days
        first = low.date()
        dates = [first + dt.timedelta(days=n) for n in range(((high - dt.timedelta(minutes=1)).date() - first).days + 1)]
    if source == "dynamodb":
        client = dynamo.aws_client()
        tables = dynamo.table_names(config["table_prefix"])
        parts = [to_table(kind, sensor, partition_items(client, tables, kind, device, sensor, day)) for day in dates]
    else:
        parts = [table for table in (_read_file(source, partition_path(kind, device, sensor, day)) for day in dates)
                 if table is not None]
    if not parts:
        return schema(kind, sensor).empty_table().to_pandas()
    frame = pa.concat_tables(parts).to_pandas()
    column = "ts" if kind == "minutes" else "start"
    return frame[(frame[column] >= low) & (frame[column] < high)]


def _read_file(source, relative):
    import pyarrow.parquet as pq

    if str(source).startswith("s3://"):
        bucket, _, prefix = str(source)[5:].partition("/")
        key = f"{prefix.strip('/')}/{relative}" if prefix.strip("/") else relative
        s3 = dynamo.aws_client("s3")
        try:
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        except s3.exceptions.NoSuchKey:
            return None
        return pq.read_table(io.BytesIO(body))
    path = Path(source) / relative
    return pq.read_table(path) if path.exists() else None


if __name__ == "__main__":
    from utils import not_a_command, run_cli

    sys.exit(run_cli(lambda argv: not_a_command(
        "mirror.py", __doc__, "aggregate.py writes the mirror after each run (s3_bucket, parquet_dir), "
        "and `python aggregate.py --device NAME --export-from DATE` rewrites a range of it", argv)))
