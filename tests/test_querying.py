"""README's DuckDB query runs on a real mirror; its Athena DDL matches the files' columns."""

import datetime as dt
import re
import shlex
import subprocess
import sys

import pytest

import mirror
from tests.conftest import PROJECT_DIR
from tests.test_mirror import DEVICE, mirrored  # noqa: F401 (the fixture)

duckdb = pytest.importorskip("duckdb")


def sql_blocks(containing=""):
    return [block for block in re.findall(r"```sql\n(.*?)```", (PROJECT_DIR / "README.md").read_text(), re.S)
            if containing in block]


def test_the_duckdb_query_answers_on_the_local_mirror(mirrored, monkeypatch):  # noqa: F811
    query = sql_blocks("parquet/minutes/")[0]
    monkeypatch.chdir(mirrored["parquet_dir"].parent)
    (mirrored["parquet_dir"].parent / "parquet").exists() or pytest.fail("the mirror folder is 'parquet'")
    # another device's BME280 files, listed first, must not lend the query their columns
    bme280 = mirrored["parquet_dir"] / mirror.partition_path("minutes", DEVICE, "bme280", dt.date(2025, 6, 21))
    other = mirrored["parquet_dir"] / mirror.partition_path("minutes", "a_env_only", "bme280", dt.date(2025, 6, 21))
    other.parent.mkdir(parents=True)
    other.write_bytes(bme280.read_bytes())
    rows = duckdb.sql(query).fetchall()
    # Kyiv's days (+03:00 in June): the readings from 21:00 UTC on belong to 22 June there
    assert rows == [(dt.date(2025, 6, 21), 60, 60, 1.0), (dt.date(2025, 6, 22), 270, 90, 0.3333)]


def test_the_readme_command_runs_the_query_file(mirrored, tmp_path):  # noqa: F811
    """The command as the README writes it (with this interpreter for .venv/bin/python)."""
    command = re.search(r"```\n\.venv/bin/python (-c \"import duckdb.*?\")\n```",
                        (PROJECT_DIR / "README.md").read_text()).group(1)
    folder = mirrored["parquet_dir"].parent
    (folder / "query.sql").write_text(sql_blocks("parquet/minutes/")[0])
    result = subprocess.run(f"{shlex.quote(sys.executable)} {command}", shell=True, cwd=folder,
                            capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    assert re.search(r"2025-06-22 .*│ +270 │ +90 │ +0\.3333", result.stdout), result.stdout


def test_the_athena_table_matches_the_files():
    (ddl,) = sql_blocks("CREATE EXTERNAL TABLE")
    body = re.search(r"CREATE EXTERNAL TABLE \w+ \((.*?)\)\s*PARTITIONED BY \((.*?)\)", ddl, re.S)
    columns = [line.strip().rstrip(",").split() for line in body.group(1).strip().splitlines()]
    partitions = [part.strip().split()[0].strip("`") for part in body.group(2).split(",")]
    pin, env = mirror.schema("minutes", "4"), mirror.schema("minutes", "bme280")
    expected = {}
    for field in list(pin) + list(env):
        expected[field.name] = "timestamp" if field.name == "ts" else ("bigint" if str(field.type) == "int64"
                                                                       else "double")
    assert dict(columns) == expected
    assert partitions == ["device", "sensor", "date"]
    path = mirror.partition_path("minutes", "alex_rpi", "4", dt.date(2025, 6, 21))
    template = re.search(r"'storage.location.template' = 's3://[^/]+/[^/]+/(.*?)'", ddl).group(1)
    assert template.replace("${device}", "alex_rpi").replace("${sensor}", "4").replace(
        "${date}", "2025-06-21") + mirror.FILE_NAME == path
    assert "'projection.date.format' = 'yyyy-MM-dd'" in ddl
