"""Shared fixtures, chained as moto's own tests do: credentials -> mock -> tables.

Unit tests use moto's in-process `mock_aws`; end-to-end tests run the real scripts as
subprocesses against a `ThreadedMotoServer` on 127.0.0.1 (one per session, each test with
its own table prefix).
"""

import os
import socket
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

PROJECT_DIR = Path(__file__).resolve().parent.parent
PYTHON = sys.executable
# How long a script may run before a test calls it hung: a bound for a hang, not a speed
# check, so a Raspberry Pi under load (ten times slower and more) passes too.
SCRIPT_TIMEOUT_SECONDS = 600
FAKE_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_REGION": "us-east-1",
    "AWS_DEFAULT_REGION": "us-east-1",
}


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch):
    """No test sees the developer's BLACKOUT_* settings, AWS profile or endpoint."""
    for name in list(os.environ):
        if name.startswith("BLACKOUT_") or name.startswith("AWS_"):
            monkeypatch.delenv(name)


@pytest.fixture
def aws_credentials(monkeypatch):
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)


@pytest.fixture
def mocked_aws(aws_credentials):
    from moto import mock_aws

    with mock_aws():
        yield


@pytest.fixture
def config(tmp_path):
    """A complete configuration as utils.load_config returns it."""
    return {
        "device": "alex_rpi",
        "table_prefix": "test-bm",
        "buffer_dir": tmp_path / "buffer",
        "log_dir": tmp_path / "logs",
        "retention_days": None,
        "s3_bucket": None,
        "s3_prefix": "blackout-monitor",
        "parquet_dir": None,
    }


@pytest.fixture
def dynamodb(mocked_aws, config):
    """A DynamoDB client with the project's three tables created."""
    import dynamo

    client = dynamo.aws_client()
    dynamo.create_tables(config, client)
    return client


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="session")
def moto_server():
    """The endpoint URL of a moto server on 127.0.0.1, for the whole session."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    yield f"http://127.0.0.1:{port}"
    server.stop()


@pytest.fixture
def server_env(moto_server, tmp_path):
    """Environment for the scripts as subprocesses: the loopback endpoint, own tables and dirs."""
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BLACKOUT_", "AWS_"))}
    env.update(FAKE_CREDENTIALS)
    env.update({
        "AWS_ENDPOINT_URL": moto_server,
        "BLACKOUT_TABLE_PREFIX": f"t-{uuid.uuid4().hex[:12]}",
        "BLACKOUT_BUFFER_DIR": str(tmp_path / "buffer"),
        "BLACKOUT_LOG_DIR": str(tmp_path / "logs"),
        "BLACKOUT_CONFIG": str(tmp_path / "config.toml"),
        "PYTHONDONTWRITEBYTECODE": "1",
    })
    (tmp_path / "config.toml").write_text("")
    return env


def run_script(script, *args, env, timeout=SCRIPT_TIMEOUT_SECONDS, **kwargs):
    """Run one of the project's scripts as cron would; returns the CompletedProcess."""
    return subprocess.run(
        [PYTHON, str(PROJECT_DIR / script), *map(str, args)],
        env=env, capture_output=True, text=True, timeout=timeout, cwd=kwargs.pop("cwd", PROJECT_DIR),
        **kwargs,
    )


def flush_until_empty(env):
    """`dynamo.py flush` as cron's next minutes would run it, until nothing waits; returns
    the number of runs. A flush stops at its time budget, and how much fits in one depends on
    the machine: a test may count on each run sending something, never on how much."""
    from tests.faultproxy import buffer_state

    runs, pending = 0, len(buffer_state(env["BLACKOUT_BUFFER_DIR"])["pending"])
    while pending:
        runs += 1
        result = run_script("dynamo.py", "flush", env=env)
        assert (result.returncode, result.stdout) == (0, ""), result.stderr
        pending, before = len(buffer_state(env["BLACKOUT_BUFFER_DIR"])["pending"]), pending
        assert pending < before, f"flush run {runs} sent nothing: {result.stderr}"
    return runs


DEFERRED = "aggregation waits for the next run"  # aggregate.py's log line when it leaves its work to the next run


def aggregate_until_done(env, *args, runs=3):
    """`aggregate.py` as the hourly cron runs it, again while a run left its work to the next
    one: moto on a loaded machine can answer a large query slower than the client's read
    timeout, which the script takes for an unreachable cloud. Any other failure fails."""
    def deferred():
        logs = Path(env["BLACKOUT_LOG_DIR"])
        return sum(path.read_text().count(DEFERRED) for path in logs.glob("*.log")) if logs.is_dir() else 0

    for _ in range(runs):
        before = deferred()
        result = run_script("aggregate.py", *args, env=env)
        assert result.returncode == 0, result.stderr
        if deferred() == before:
            return result
    pytest.fail(f"aggregate.py left its work to the next run {runs} times in a row")


@pytest.fixture
def server_client(server_env):
    """A boto3 DynamoDB client on the loopback server, tables of this test created."""
    import boto3

    result = run_script("dynamo.py", "create-tables", env=server_env)
    assert result.returncode == 0, result.stderr
    return boto3.client(
        "dynamodb", endpoint_url=server_env["AWS_ENDPOINT_URL"], region_name="us-east-1",
        aws_access_key_id="testing", aws_secret_access_key="testing",
    )


@pytest.fixture
def webhook():
    """A webhook receiver on 127.0.0.1 that accepts every POST (tests.fakehttp.FakeServer)."""
    from tests.fakehttp import FakeServer

    server = FakeServer(lambda path: (200, {"received": True}, {}))
    yield server
    server.close()
