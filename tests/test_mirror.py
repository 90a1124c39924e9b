"""The Parquet mirror: files equal the DynamoDB items, late data rewrites only its partitions."""

import datetime as dt
import json

import pytest

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

import aggregate  # noqa: E402
import dynamo  # noqa: E402
import mirror  # noqa: E402
from tests.test_aggregate import DAY1, DEVICE, LATER, at, span, store  # noqa: E402

UTC = dt.timezone.utc
BUCKET = "alex-blackout-monitor"


@pytest.fixture
def mirrored(dynamodb, config, tmp_path):
    """Two days of pin readings (an outage across midnight) and a few BME280 readings, aggregated
    and mirrored to a local folder and an S3 bucket."""
    import boto3

    config.update(parquet_dir=tmp_path / "parquet", s3_bucket=BUCKET, s3_prefix="bm")
    boto3.client("s3").create_bucket(Bucket=BUCKET)
    store(dynamodb, config, span("20:00", "22:30", 1) + span("22:30", "01:30", 0, end_day=DAY1 + dt.timedelta(days=1)))
    store(dynamodb, config, [(at("21:00") + dt.timedelta(minutes=m),
                              {"temperature_c": 21.0 + m / 100, "humidity_pct": 40.5, "pressure_hpa": 1013.25})
                             for m in range(3)], sensor="bme280")
    result = aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    aggregate.mirror_touched(config, DEVICE, result.touched, dynamodb)
    return config


def files(root):
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*.parquet"))}


def test_the_layout_is_hive_partitioned(mirrored):
    assert sorted(files(mirrored["parquet_dir"])) == [
        "days/device=alex_rpi/sensor=4/month=2025-06/data.parquet",
        "days/device=alex_rpi/sensor=bme280/month=2025-06/data.parquet",
        "hours/device=alex_rpi/sensor=4/date=2025-06-21/data.parquet",
        "hours/device=alex_rpi/sensor=4/date=2025-06-22/data.parquet",
        "hours/device=alex_rpi/sensor=bme280/date=2025-06-21/data.parquet",
        "minutes/device=alex_rpi/sensor=4/date=2025-06-21/data.parquet",
        "minutes/device=alex_rpi/sensor=4/date=2025-06-22/data.parquet",
        "minutes/device=alex_rpi/sensor=bme280/date=2025-06-21/data.parquet",
    ]


@pytest.mark.parametrize("kind, sensor, day", [
    ("minutes", "4", DAY1), ("minutes", "4", DAY1 + dt.timedelta(days=1)), ("hours", "4", DAY1),
    ("days", "4", DAY1), ("minutes", "bme280", DAY1), ("hours", "bme280", DAY1), ("days", "bme280", DAY1),
])
def test_files_equal_the_items(dynamodb, mirrored, kind, sensor, day):
    import boto3

    relative = mirror.partition_path(kind, DEVICE, sensor, day.date())
    local = pq.read_table(mirrored["parquet_dir"] / relative)
    body = boto3.client("s3").get_object(Bucket=BUCKET, Key=f"bm/{relative}")["Body"].read()
    assert body == (mirrored["parquet_dir"] / relative).read_bytes()
    items = mirror.partition_items(dynamodb, dynamo.table_names(mirrored["table_prefix"]), kind, DEVICE, sensor,
                                   day.date())
    items.sort(key=lambda item: dynamo.period_start(item["pk"], item["sk"]))
    assert local.num_rows == len(items) > 0
    assert local.schema.field("ts").type == pa.timestamp("us", tz="UTC")
    optional = {name for name, _type in mirror.SCHEDULE_STATS}  # only with a schedule (tests/test_schedule.py)
    for name, type_ in mirror.columns(kind, sensor):
        assert local.schema.field(name).type == {"int": pa.int64(), "float": pa.float64(), "json": pa.string()}[type_]
        values = [item.get(name) if name in optional else item[name] for item in items]
        if type_ == "json":
            values = [None if value is None else json.dumps(value, ensure_ascii=False) for value in values]
        assert local.column(name).to_pylist() == values
    assert [ts.isoformat(timespec="microseconds") for ts in local.column("ts").to_pylist()] == [
        item["ts"] for item in items]
    if kind != "minutes":
        assert local.column("start").to_pylist() == [dynamo.period_start(i["pk"], i["sk"]) for i in items]
    assert pq.ParquetFile(mirrored["parquet_dir"] / relative).metadata.row_group(0).column(0).compression == "ZSTD"


def test_duckdb_reads_the_partitions(mirrored):
    duckdb = pytest.importorskip("duckdb")
    root = mirrored["parquet_dir"]
    rows = duckdb.sql(
        f"SELECT device, sensor, date, count(*) AS n, sum(reading) AS on_minutes "
        f"FROM read_parquet('{root}/minutes/*/*/*/*.parquet', hive_partitioning = true) "
        f"WHERE sensor = '4' GROUP BY ALL ORDER BY date").fetchall()
    assert rows == [("alex_rpi", "4", dt.date(2025, 6, 21), 240, 150), ("alex_rpi", "4", dt.date(2025, 6, 22), 90, 0)]
    days = duckdb.sql(f"SELECT start, outages, longest_outage_minutes FROM read_parquet("
                      f"'{root}/days/*/*/*/*.parquet', hive_partitioning = true) WHERE sensor = '4' ORDER BY start")
    assert [row[1:] for row in days.fetchall()] == [(1, 180), (0, 180)]


def test_a_late_reading_rewrites_exactly_its_partitions_and_a_rerun_nothing(dynamodb, mirrored):
    root = mirrored["parquet_dir"]
    before = files(root)
    store(dynamodb, mirrored, [(at("10:00", DAY1 + dt.timedelta(days=1)), 1)])
    result = aggregate.aggregate(mirrored, DEVICE, client=dynamodb, now=LATER)
    aggregate.mirror_touched(mirrored, DEVICE, result.touched, dynamodb)
    after = files(root)
    changed = {name for name in after if before.get(name) != after[name]}
    assert changed == {"minutes/device=alex_rpi/sensor=4/date=2025-06-22/data.parquet",
                       "hours/device=alex_rpi/sensor=4/date=2025-06-22/data.parquet",
                       "days/device=alex_rpi/sensor=4/month=2025-06/data.parquet"}
    mirror.backfill(mirrored, DEVICE, ["4", "bme280"], DAY1.date(), DAY1.date() + dt.timedelta(days=1),
                    client=dynamodb, progress=False)
    assert files(root) == after  # rewritten from the same items: the same bytes


def test_a_failed_upload_is_retried_by_the_next_run(dynamodb, mirrored, monkeypatch):
    store(dynamodb, mirrored, [(at("10:00", DAY1 + dt.timedelta(days=1)), 1)])
    result = aggregate.aggregate(mirrored, DEVICE, client=dynamodb, now=LATER)

    def down(*args, **kwargs):
        raise dynamo.CloudUnreachable("S3 unreachable")

    monkeypatch.setattr(mirror, "export", down)
    with pytest.raises(dynamo.CloudUnreachable):
        aggregate.mirror_touched(mirrored, DEVICE, result.touched, dynamodb)
    assert aggregate.load_pending(mirrored) == {"4": {dt.date(2025, 6, 22)}}
    monkeypatch.undo()
    aggregate.mirror_touched(mirrored, DEVICE, {}, dynamodb)  # the next run, nothing new
    assert aggregate.load_pending(mirrored) == {}
    table = pq.read_table(mirrored["parquet_dir"] / mirror.partition_path("minutes", DEVICE, "4", dt.date(2025, 6, 22)))
    assert table.num_rows == 91


def test_read_gives_the_notebook_a_frame_from_each_source(dynamodb, mirrored):
    start, end = DAY1.date(), DAY1.date() + dt.timedelta(days=1)
    local = mirror.read(mirrored["parquet_dir"], "hours", DEVICE, "4", start, end)
    s3 = mirror.read(f"s3://{BUCKET}/bm", "hours", DEVICE, "4", start, end)
    table = mirror.read("dynamodb", "hours", DEVICE, "4", start, end, config=mirrored)
    assert len(local) == len(s3) == len(table) == 6
    assert list(local["longest_outage_minutes"]) == list(table["longest_outage_minutes"]) == [0, 0, 180, 180, 180, 180]


def test_days_partition_by_the_users_local_month(dynamodb, config, tmp_path):
    """Kyiv's 1 July begins at 21:00 UTC on 30 June: its row goes to month=2025-07, and reading
    back the local days of July gives it, and the minutes of that local day only."""
    config.update(parquet_dir=tmp_path / "parquet", timezone="Europe/Kyiv")
    store(dynamodb, config, span("20:00", "22:00", 1, day=dt.datetime(2025, 6, 30, tzinfo=UTC)))
    result = aggregate.aggregate(config, DEVICE, client=dynamodb, now=LATER)
    aggregate.mirror_touched(config, DEVICE, result.touched, dynamodb)
    days = {path: pq.read_table(tmp_path / "parquet" / path).to_pylist()
            for path in files(tmp_path / "parquet") if path.startswith("days/")}
    assert {path: [(row["start"], row["count"]) for row in rows] for path, rows in days.items()} == {
        "days/device=alex_rpi/sensor=4/month=2025-06/data.parquet": [(dt.datetime(2025, 6, 29, 21, tzinfo=UTC), 60)],
        "days/device=alex_rpi/sensor=4/month=2025-07/data.parquet": [(dt.datetime(2025, 6, 30, 21, tzinfo=UTC), 60)],
    }
    july = mirror.read(tmp_path / "parquet", "days", DEVICE, "4", dt.date(2025, 7, 1), dt.date(2025, 7, 31),
                       timezone="Europe/Kyiv")
    assert list(july["count"]) == [60]
    minutes = mirror.read(tmp_path / "parquet", "minutes", DEVICE, "4", dt.date(2025, 7, 1), dt.date(2025, 7, 1),
                          timezone="Europe/Kyiv")
    assert (minutes["ts"].min(), minutes["ts"].max()) == (pd_time("2025-06-30T21:00:03.241969"),
                                                          pd_time("2025-06-30T21:59:03.241969"))


def pd_time(text):
    return dt.datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_partitions_of_sensors_aggregated_before_a_failure_are_mirrored_later(dynamodb, config, tmp_path,
                                                                              monkeypatch):
    """Sensor 4 is aggregated (its items leave the status index), then the link drops before
    bme280: the next run must still write sensor 4's files, though the index no longer has them."""
    import utils

    config.update(parquet_dir=tmp_path / "parquet")
    store(dynamodb, config, span("20:00", "21:00", 1))
    store(dynamodb, config, [(at("20:00"), {"temperature_c": 21.0, "humidity_pct": 40.5, "pressure_hpa": 1013.25})],
          sensor="bme280")
    original = aggregate.aggregate_sensor

    def link_drops_at_bme280(client, tables, device, sensor, *args, **kwargs):
        if sensor == "bme280":
            raise dynamo.CloudUnreachable("link dropped")
        return original(client, tables, device, sensor, *args, **kwargs)

    monkeypatch.setattr(aggregate, "aggregate_sensor", link_drops_at_bme280)
    monkeypatch.setattr(aggregate, "utc_now", lambda: LATER)
    monkeypatch.setattr(aggregate, "load_config", lambda args, keys: dict(config))
    assert aggregate.main(["--device", DEVICE]) == utils.EXIT_OK  # unreachable: waits, no mail
    assert files(config["parquet_dir"]) == {}
    assert aggregate.load_pending(config) == {"4": {DAY1.date()}}

    monkeypatch.setattr(aggregate, "aggregate_sensor", original)
    assert aggregate.main(["--device", DEVICE]) == utils.EXIT_OK
    assert sorted(files(config["parquet_dir"])) == [
        "days/device=alex_rpi/sensor=4/month=2025-06/data.parquet",
        "days/device=alex_rpi/sensor=bme280/month=2025-06/data.parquet",
        "hours/device=alex_rpi/sensor=4/date=2025-06-21/data.parquet",
        "hours/device=alex_rpi/sensor=bme280/date=2025-06-21/data.parquet",
        "minutes/device=alex_rpi/sensor=4/date=2025-06-21/data.parquet",
        "minutes/device=alex_rpi/sensor=bme280/date=2025-06-21/data.parquet",
    ]
    assert aggregate.load_pending(config) == {}
