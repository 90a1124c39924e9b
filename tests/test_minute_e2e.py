"""The minute path end to end: the real scripts as subprocesses against moto's server on
127.0.0.1, the real run-parts, the real `aws dynamodb query` commands of README.md."""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

import dynamo
import sensors
import utils
from tests.conftest import PROJECT_DIR, SCRIPT_TIMEOUT_SECONDS, flush_until_empty, free_port, run_script

DEVICE = "alex_rpi"


def items_of(client, table, pk):
    return [dynamo.plain(item) for item in client.query(
        TableName=table, KeyConditionExpression="pk = :pk",
        ExpressionAttributeValues={":pk": {"S": pk}})["Items"]]


def buffered(env):
    directory = env["BLACKOUT_BUFFER_DIR"]
    if not os.path.isdir(directory):
        return []
    return sorted(name for name in os.listdir(directory) if name.endswith(".json") and not name.startswith("."))


def log_text(env):
    directory = env["BLACKOUT_LOG_DIR"]
    return "".join(open(os.path.join(directory, name)).read() for name in sorted(os.listdir(directory)))


def test_read_pin_stores_the_exact_item(server_env, server_client):
    result = run_script("read_pin.py", "--device", DEVICE, "--pin", "4", "--simulate", "--value", "0",
                        "--at", "2025-06-21T19:00:03.241969", env=server_env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    prefix = server_env["BLACKOUT_TABLE_PREFIX"]
    assert items_of(server_client, f"{prefix}-minutes", "device#alex_rpi#sensor#4#date#2025-06-21-19") == [{
        "pk": "device#alex_rpi#sensor#4#date#2025-06-21-19",
        "sk": "time#00",
        "ts": "2025-06-21T19:00:03.241969+00:00",
        "reading": 0,
    }]
    # and the marker of its hour, written when it was flushed (long after the hour ended)
    (marker,) = items_of(server_client, f"{prefix}-minutes", "device#alex_rpi#sensor#4#status#new")
    assert marker["sk"] == "hour#2025-06-21-19" and set(marker) == {"pk", "sk", "ts"}
    assert items_of(server_client, f"{prefix}-minutes", "device#alex_rpi#registry") == [
        {"pk": "device#alex_rpi#registry", "sk": "sensor#4", "device": DEVICE, "sensor": "4"}]
    assert buffered(server_env) == []
    assert "sensor 4 at 2025-06-21T19:00:03.241969+00:00: {'reading': 0}" in log_text(server_env)


def test_read_env_stores_the_exact_item(server_env, server_client):
    at = utils.parse_time("2025-06-21T19:07:00")
    result = run_script("read_env.py", "--device", DEVICE, "--simulate", "--at", "2025-06-21T19:07:00",
                        env=server_env)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    values = sensors.simulated_environment(at)
    items = items_of(server_client, f"{server_env['BLACKOUT_TABLE_PREFIX']}-minutes",
                     "device#alex_rpi#sensor#bme280#date#2025-06-21-19")
    assert items == [{"pk": "device#alex_rpi#sensor#bme280#date#2025-06-21-19", "sk": "time#07",
                      "ts": "2025-06-21T19:07:00.000000+00:00", **values}]
    assert set(values) == {"temperature_c", "humidity_pct", "pressure_hpa"}
    assert buffered(server_env) == []


def test_a_simulated_day_lands_whole(server_env, server_client):
    result = run_script("read_pin.py", "--device", DEVICE, "--pin", "4", "--simulate",
                        "--at", "2025-06-21T00:00", "--until", "2025-06-22T00:00", env=server_env)
    assert (result.returncode, result.stderr) == (0, "")
    assert len(buffered(server_env)) < 1440  # its own flush sent what its time budget allowed...
    flush_until_empty(server_env)  # ...and cron's next minutes send the rest, on a slow machine
    table = f"{server_env['BLACKOUT_TABLE_PREFIX']}-minutes"
    off = 0
    for hour in range(24):
        items = items_of(server_client, table, f"device#alex_rpi#sensor#4#date#2025-06-21-{hour:02d}")
        assert [item["sk"] for item in items] == [f"time#{minute:02d}" for minute in range(60)]
        off += sum(1 for item in items if item["reading"] == 0)
    assert off == 270  # the documented schedule: 30 + 120 + 90 + 30 minutes OFF
    assert buffered(server_env) == []


def test_run_parts_runs_the_cron_scripts(server_env, server_client):
    env = dict(server_env, PROJECT_DIR=str(PROJECT_DIR), PYTHON=sys.executable, DEVICE=DEVICE, PIN="17",
               OPTIONS="--simulate")
    result = subprocess.run(["run-parts", "--report", str(PROJECT_DIR / "cron_example" / "cron.minutes.pi")],
                            env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # quiet on success
    sensors_seen = dynamo.sensors_of(server_client, f"{server_env['BLACKOUT_TABLE_PREFIX']}-minutes", DEVICE)
    assert sensors_seen == ["17", "bme280"]
    assert buffered(server_env) == []
    # the same environment, as one crontab gives every job: the aggregator drops --simulate
    hourly = subprocess.run(["run-parts", "--report", str(PROJECT_DIR / "cron_example" / "cron.hourly.pi")],
                            env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)
    assert (hourly.returncode, hourly.stdout, hourly.stderr) == (0, "", "")
    assert "aggregated 2 hours and 2 days of alex_rpi" in log_text(server_env)  # pin 17 and bme280


def test_the_cron_scripts_take_device_and_pin_from_config_toml(server_env, server_client, tmp_path):
    """Nothing to edit in the scripts: they find the project from where they are, and
    config.toml names the device and the pin."""
    Path(server_env["BLACKOUT_CONFIG"]).write_text('device = "from_config"\npin = 22\n')
    env = {name: value for name, value in server_env.items() if name not in ("PROJECT_DIR", "DEVICE", "PIN")}
    env.update(PYTHON=sys.executable, OPTIONS="--simulate")
    result = subprocess.run(["run-parts", "--report", str(PROJECT_DIR / "cron_example" / "cron.minutes.pi")],
                            env=env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    table = f"{server_env['BLACKOUT_TABLE_PREFIX']}-minutes"
    assert dynamo.sensors_of(server_client, table, "from_config") == ["22", "bme280"]


def test_cron_scripts_are_executable_in_git():
    listing = subprocess.run(["git", "ls-files", "-s", "cron_example"], cwd=PROJECT_DIR,
                             capture_output=True, text=True).stdout
    modes = {line.split("\t")[1]: line.split()[0] for line in listing.splitlines()}
    for name in ("cron.minutes.pi/blackout-monitor", "cron.minutes.pi/env-monitor",
                 "cron.hourly.pi/aggregate_blackout_readings"):
        assert modes.get(f"cron_example/{name}") == "100755", listing


def readme_commands(prefix):
    """The `aws dynamodb query` commands of README.md, continuation lines joined."""
    text = (PROJECT_DIR / "README.md").read_text()
    commands = []
    for block in re.findall(r"```[a-z]*\n(.*?)```", text, re.S):
        for command in re.split(r"\n(?=aws )", block.replace("\\\n", " ")):
            if command.startswith("aws dynamodb query"):
                commands.append(shlex.split(command.replace("blackout-monitor-", f"{prefix}-")))
    return commands


def test_the_readme_queries_answer(server_env, server_client):
    for start, end in (("2025-06-21T19:00", "2025-06-21T20:00"),):
        result = run_script("read_pin.py", "--device", DEVICE, "--pin", "4", "--simulate", "--at", start,
                            "--until", end, env=server_env)
        assert result.returncode == 0, result.stderr
    commands = readme_commands(server_env["BLACKOUT_TABLE_PREFIX"])
    assert len(commands) >= 4
    aws = os.path.join(os.path.dirname(sys.executable), "aws")
    answers = []
    for command in commands:
        done = subprocess.run([aws, *command[1:]], env=server_env, capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)
        assert done.returncode == 0, done.stderr
        answers.append(json.loads(done.stdout))
    minutes, awaiting = answers[0], answers[-1]
    assert minutes["Count"] == 60
    assert {item["sk"]["S"] for item in minutes["Items"]} == {f"time#{m:02d}" for m in range(60)}
    assert awaiting["Count"] == 1  # the marker of the one hour flushed
    assert [item["sk"]["S"] for item in awaiting["Items"]] == ["hour#2025-06-21-19"]
    aggregate = run_script("aggregate.py", "--device", DEVICE, env=server_env)
    assert aggregate.returncode == 0, aggregate.stderr
    hours = subprocess.run([aws, *commands[1][1:]], env=server_env, capture_output=True, text=True)
    assert json.loads(hours.stdout)["Items"][0]["count"] == {"N": "60"}


def test_offline_readings_wait_and_then_land_once(server_env, server_client):
    offline = dict(server_env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    for minute in range(3):
        result = run_script("read_pin.py", "--device", DEVICE, "--pin", "4", "--simulate", "--value", "1",
                            "--at", f"2025-06-21T19:0{minute}", env=offline)
        # a reading buffered while the cloud is away is done: exit 0, nothing for cron to mail
        assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert len(buffered(server_env)) == 3
    assert log_text(server_env).count("DynamoDB unreachable, readings stay buffered") == 3
    back = run_script("dynamo.py", "flush", env=server_env)
    assert (back.returncode, back.stdout, back.stderr) == (0, "", "")
    assert buffered(server_env) == []
    assert "flushed 3 readings in 2 batches, 0 left" in log_text(server_env)  # the readings, then their hour's marker
    items = items_of(server_client, f"{server_env['BLACKOUT_TABLE_PREFIX']}-minutes",
                     "device#alex_rpi#sensor#4#date#2025-06-21-19")
    assert [item["sk"] for item in items] == ["time#00", "time#01", "time#02"]
    again = run_script("dynamo.py", "flush", env=server_env)
    assert again.returncode == 0 and "flushed 0 readings" in log_text(server_env)


def test_create_tables_is_idempotent_and_status_reports(server_env, server_client):
    again = run_script("dynamo.py", "create-tables", env=server_env)
    assert (again.returncode, again.stderr) == (0, "")
    assert again.stdout.startswith("tables exist: ")
    run_script("read_pin.py", "--device", DEVICE, "--pin", "4", "--simulate", "--value", "1", "--no-flush",
               "--at", "2025-06-21T19:00", env=server_env)
    status = run_script("dynamo.py", "status", "--device", DEVICE, env=server_env)
    assert status.returncode == 0, status.stderr
    assert "1 reading waiting to be flushed, oldest 2025-06-21 19:00 UTC" in status.stdout


@pytest.mark.parametrize("retention, ttl", [(None, "DISABLED"), ("30", "ENABLED")])
def test_create_tables_layout(server_env, moto_server, retention, ttl):
    import boto3

    env = dict(server_env)
    if retention:
        env["BLACKOUT_RETENTION_DAYS"] = retention
    result = run_script("dynamo.py", "create-tables", env=env)
    assert result.returncode == 0, result.stderr
    client = boto3.client("dynamodb", endpoint_url=moto_server, region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")
    prefix = env["BLACKOUT_TABLE_PREFIX"]
    for kind in ("minutes", "hours", "days"):
        table = client.describe_table(TableName=f"{prefix}-{kind}")["Table"]
        assert table["TableStatus"] == "ACTIVE"
        assert table["BillingModeSummary"]["BillingMode"] == "PAY_PER_REQUEST"
        assert [k["AttributeName"] for k in table["KeySchema"]] == ["pk", "sk"]
        assert not table.get("GlobalSecondaryIndexes")  # new hours are marker items
    status = client.describe_time_to_live(TableName=f"{prefix}-minutes")["TimeToLiveDescription"]
    assert status["TimeToLiveStatus"] == ttl
