"""What README promises a newcomer, checked: its DuckDB queries give the user's days, and the
help texts say what README says."""

import datetime as dt
import re

import pytest

import dynamo
import mirror
import sensors
import watchdog
from tests.conftest import PROJECT_DIR

KYIV = "Europe/Kyiv"
UTC = dt.timezone.utc


def readme():
    return (PROJECT_DIR / "README.md").read_text()


def sql_blocks(text):
    return re.findall(r"```sql\n(.*?)```", text, re.S)


@pytest.fixture
def demo_like_mirror(tmp_path):
    """The demo's pin 4 in a local mirror: Kyiv's 25 and 26 October 2025 (25 h), the Pi down
    02:00-04:30 on the 25th; minutes partitioned by UTC date, days by the local month."""
    from zoneinfo import ZoneInfo

    kyiv = ZoneInfo(KYIV)
    start = dt.datetime(2025, 10, 25, tzinfo=kyiv).astimezone(UTC)
    end = dt.datetime(2025, 10, 27, tzinfo=kyiv).astimezone(UTC)
    down = (dt.datetime(2025, 10, 25, 2, tzinfo=kyiv), dt.datetime(2025, 10, 25, 4, 30, tzinfo=kyiv))
    by_date, minute = {}, start
    while minute < end:
        if not down[0] <= minute < down[1]:
            pk, sk = dynamo.minute_key("demo_rpi", "4", minute)
            by_date.setdefault(minute.date(), []).append(
                {"pk": pk, "sk": sk, "ts": dynamo.format_ts(minute), "reading": sensors.simulated_pin_value(minute)})
        minute += dt.timedelta(minutes=1)
    for date, items in by_date.items():
        mirror.write_local(tmp_path / "parquet", mirror.partition_path("minutes", "demo_rpi", "4", date),
                           mirror.parquet_bytes(mirror.to_table("minutes", "4", items)))
    days = []
    for day, expected, count in ((dt.date(2025, 10, 25), 1440, 1290), (dt.date(2025, 10, 26), 1500, 1500)):
        pk, sk = dynamo.day_key("demo_rpi", "4", day)
        days.append({"pk": pk, "sk": sk, "ts": dynamo.format_ts(end), "tz": KYIV, "count": count,
                     "start": dt.datetime.combine(day, dt.time(), tzinfo=kyiv).isoformat(), "expected": expected,
                     "unknown": expected - count, "on": count, "off": 0, "uptime": 1.0, "outages": 0,
                     "longest_outage_minutes": 0})
    mirror.write_local(tmp_path / "parquet", mirror.partition_path("days", "demo_rpi", "4", dt.date(2025, 10, 1)),
                       mirror.parquet_bytes(mirror.to_table("days", "4", days)))
    assert len(by_date) == 3  # three UTC dates hold the two Kyiv days
    return tmp_path


def test_the_duckdb_queries_give_the_users_days(demo_like_mirror, monkeypatch):
    duckdb = pytest.importorskip("duckdb")
    queries = [sql for sql in sql_blocks(readme()) if "read_parquet('parquet/" in sql]
    assert len(queries) == 2 and all(f"timezone('{KYIV}', " in sql for sql in queries)
    monkeypatch.chdir(demo_like_mirror)  # as README runs them: in the folder that holds parquet/
    minutes_query, days_query = (sql.replace("alex_rpi", "demo_rpi") for sql in queries)
    with duckdb.connect() as connection:  # ICU (time zones) is built into the Python package: no download
        per_day = connection.sql(minutes_query).fetchall()
        stored = connection.sql(days_query).fetchall()
    assert [(day, minutes) for day, minutes, _on, _uptime in per_day] == [
        (dt.date(2025, 10, 25), 1440 - 150), (dt.date(2025, 10, 26), 1500)]
    assert [(day, expected) for day, expected, *_rest in stored] == [
        (dt.date(2025, 10, 25), 1440), (dt.date(2025, 10, 26), 1500)]


def test_readme_defines_ts_and_start_on_every_kind_of_row():
    text = readme()
    table = text[text.index("| rows | `ts` | `start` |"):]
    rows = [line.split("|")[1].strip() for line in table.splitlines()[2:] if line.startswith("|")]
    assert rows[:3] == ["minutes", "hours", "days"]
    assert "not the hour it covers" in table.splitlines()[3]


def test_the_watchdogs_help_says_what_readme_says():
    text = readme()
    (command,) = re.findall(r"^python watchdog\.py (\[.*\])\s+#", text, re.M)
    help_text = watchdog.build_parser().format_help()
    for flag, metavar in re.findall(r"\[(--[a-z-]+) ([A-Z0-9]+)", command):
        assert f"{flag} {metavar}" in help_text, (flag, metavar)
    options = help_text[help_text.index("options:"):]
    webhook = options[options.index("--webhook-url"):options.index("--sns-topic-arn")]
    assert "watchdog" in webhook  # the watchdog posts its silent and back there too
