"""The frugal minute (#14): one process and one BatchWriteItem a minute for every sensor, the
installs with one sensor, and a link known down costing neither boto3 nor a lost reading."""

import datetime as dt
import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import dynamo
import filebuffer
import link
import minute_job
import utils
from tests.conftest import PROJECT_DIR, free_port, run_script
from tests.faultproxy import FaultProxy, buffer_state, stored_keys

UTC = dt.timezone.utc
DEVICE = "alex_rpi"
CRON_MINUTES = PROJECT_DIR / "cron_example" / "cron.minutes.pi"
T0 = dt.datetime(2025, 6, 21, 19, 0, tzinfo=UTC)


def cron_minute(env, config_text=None):
    """One cron minute as installed: run-parts over cron.minutes.pi."""
    if config_text is not None:
        Path(env["BLACKOUT_CONFIG"]).write_text(config_text)
    env = dict(env, PROJECT_DIR=str(PROJECT_DIR), PYTHON=sys.executable, OPTIONS="--simulate")
    return subprocess.run(["run-parts", "--report", str(CRON_MINUTES)], env=env, capture_output=True, text=True,
                          timeout=120)


def log_lines(env):
    directory = Path(env["BLACKOUT_LOG_DIR"])
    return [line for path in sorted(directory.glob("*.log")) for line in path.read_text().splitlines()]


def minute_table(env):
    return f"{env['BLACKOUT_TABLE_PREFIX']}-minutes"


# --- one process, one write, for every sensor ------------------------------------------------

def test_one_cron_minute_stores_both_sensors_with_one_process_and_one_batch(moto_server, server_env,
                                                                              server_client):
    with FaultProxy(moto_server) as proxy:
        env = dict(server_env, AWS_ENDPOINT_URL=proxy.url, BLACKOUT_DEVICE=DEVICE)
        result = cron_minute(env, "pin = 4\n")
        batches = proxy.requests("BatchWriteItem")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")  # quiet on success
    assert dynamo.sensors_of(server_client, minute_table(env), DEVICE) == ["4", "bme280"]
    assert len(stored_keys(server_client, minute_table(env))) == 2
    # both readings in one BatchWriteItem, then (once an hour: here the minute's first flush) the
    # markers of their hour in another
    batch, marking = batches
    (requests,) = batch.body["RequestItems"].values()
    assert sorted(r["PutRequest"]["Item"]["pk"]["S"].split("#")[3] for r in requests) == ["4", "bme280"]
    (markers,) = marking.body["RequestItems"].values()
    assert sorted(r["PutRequest"]["Item"]["pk"]["S"] for r in markers) == [
        dynamo.status_key(DEVICE, "4"), dynamo.status_key(DEVICE, "bme280")]
    readers = [line.split()[1] for line in log_lines(env) if " INFO sensor " in line]
    assert len(readers) == 2 and len(set(readers)) == 1 and readers[0].startswith("read_pin[")  # one process
    assert buffer_state(env["BLACKOUT_BUFFER_DIR"])["pending"] == []


@pytest.mark.parametrize("config_text, sensors", [
    ("pin = 17\nbme280 = false\n", ["17"]),   # a relay only
    ("", ["bme280"]),                          # a BME280 only
])
def test_an_install_with_one_sensor_works_as_installed(server_env, server_client, config_text, sensors):
    env = dict(server_env, BLACKOUT_DEVICE=DEVICE)
    result = cron_minute(env, config_text)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert dynamo.sensors_of(server_client, minute_table(env), DEVICE) == sensors
    assert len(stored_keys(server_client, minute_table(env))) == 1


def test_the_env_script_reads_the_bme280_alone_when_the_relay_script_is_gone(server_env, server_client, tmp_path):
    import shutil

    cron_dir = tmp_path / "cron.minutes.pi"
    cron_dir.mkdir()
    shutil.copy2(CRON_MINUTES / "env-monitor", cron_dir / "env-monitor")
    env = dict(server_env, BLACKOUT_DEVICE=DEVICE, PROJECT_DIR=str(PROJECT_DIR), PYTHON=sys.executable,
               OPTIONS="--simulate")
    result = subprocess.run(["run-parts", "--report", str(cron_dir)], env=env, capture_output=True, text=True,
                            timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert dynamo.sensors_of(server_client, minute_table(env), DEVICE) == ["bme280"]


def test_no_sensor_configured_is_a_one_line_usage_error(server_env):
    Path(server_env["BLACKOUT_CONFIG"]).write_text("bme280 = false\n")
    result = run_script("read_pin.py", "--all-sensors", "--simulate", env=server_env)
    assert result.returncode == 2 and result.stderr.startswith("Error: no sensor configured")
    assert len(result.stderr.splitlines()) == 1


@pytest.mark.parametrize("value", ["maybe", "2", "[1]"])
def test_bme280_must_be_true_or_false(tmp_path, value):
    path = tmp_path / "config.toml"
    path.write_text(f"bme280 = {value if value != 'maybe' else repr(value)}\n".replace("'", '"'))
    with pytest.raises(utils.ConfigError, match=f"bme280 in {re.escape(str(path))} must be true or false"):
        utils.load_config(None, ("bme280",), {"BLACKOUT_CONFIG": str(path)})
    assert utils.load_config(None, ("bme280",), {"BLACKOUT_BME280": "no"})["bme280"] is False


def test_a_missing_bme280_costs_only_its_own_reading(dynamodb, config):
    from sensors import HardwareError

    class Args:
        at = until = None
        simulate = no_flush = False

    def no_bme280(at):
        raise HardwareError("no BME280 answers at 0x76 on I2C bus 1")

    with pytest.raises(utils.ConfigError, match="no BME280 answers"):
        minute_job.run_all(config, Args(), [("4", lambda at: {"reading": 1}), ("bme280", no_bme280)])
    keys = stored_keys(dynamodb, "test-bm-minutes")
    assert [key[0].split("#")[3] for key in keys] == ["4"]  # stored and flushed before the error


def test_the_readings_of_a_minute_share_one_directory_fsync(tmp_path, monkeypatch):
    calls = []
    real = filebuffer._fsync_dir
    monkeypatch.setattr(filebuffer, "_fsync_dir", lambda directory: calls.append(directory) or real(directory))
    store = filebuffer.Buffer(tmp_path)
    readings = [filebuffer.Reading(DEVICE, "4", T0, {"reading": 1}),
                filebuffer.Reading(DEVICE, "bme280", T0, {"temperature_c": 20.0, "humidity_pct": 50.0,
                                                          "pressure_hpa": 1000.0})]
    outcomes = store.write_all(readings)
    assert [error for _path, error in outcomes] == [None, None]
    assert len(calls) == 1
    assert [store.load(path) for path in store.pending()] == sorted(readings, key=lambda r: r.file_name)


# --- a link known down: no boto3, nothing lost, back within a minute ---------------------------

OFFLINE = {
    "refused": lambda: f"http://127.0.0.1:{free_port()}",
    "DNS failing": lambda: "http://blackout-test.invalid:4566",
    "no route": lambda: "http://[2001:db8::1]:4566",  # documentation prefix: never routed
}
# Runs read_pin.py as cron does, then writes the top-level modules it imported to argv[1].
MODULES_SEEN = """
import runpy, sys
out, sys.argv = sys.argv[1], sys.argv[2:]
sys.path.insert(0, {project!r})
try:
    runpy.run_path(sys.argv[0], run_name="__main__")
except SystemExit as done:
    code = done.code
open(out, "w").write(str(code) + " " + " ".join(sorted({{name.split(".")[0] for name in sys.modules}})))
"""


@pytest.mark.parametrize("kind", OFFLINE)
def test_no_boto3_while_the_link_is_known_down(server_env, tmp_path, kind):
    env = dict(server_env, AWS_ENDPOINT_URL=OFFLINE[kind](), BLACKOUT_DEVICE=DEVICE)
    Path(env["BLACKOUT_CONFIG"]).write_text("pin = 4\n")
    first = run_script("read_pin.py", "--all-sensors", "--simulate", env=env)  # finds the link down
    assert (first.returncode, first.stderr) == (0, "")
    state = link.load(env["BLACKOUT_BUFFER_DIR"])
    assert state is not None and state["since"] and state["endpoint"] == env["AWS_ENDPOINT_URL"]
    seen = tmp_path / "modules"
    second = subprocess.run([sys.executable, "-c", MODULES_SEEN.format(project=str(PROJECT_DIR)), str(seen),
                             str(PROJECT_DIR / "read_pin.py"), "--all-sensors", "--simulate"],
                            env=env, capture_output=True, text=True, timeout=120)
    assert (second.returncode, second.stdout, second.stderr) == (0, "", "")
    code, *modules = seen.read_text().split()
    assert code == "0" and "read_pin" not in modules  # (run as __main__)
    assert "boto3" not in modules and "botocore" not in modules and "urllib3" not in modules
    assert len(buffer_state(env["BLACKOUT_BUFFER_DIR"])["pending"]) == 4  # both minutes, both sensors
    assert link.load(env["BLACKOUT_BUFFER_DIR"]) == state  # not rewritten: no write to the card
    assert sum("DynamoDB unreachable, readings stay buffered" in line for line in log_lines(env)) == 2


def test_the_link_back_is_noticed_in_the_next_minute_and_everything_lands_once(server_env, server_client):
    """The endpoint refuses for two minutes, then a server answers on its port."""
    from moto.server import ThreadedMotoServer

    port = free_port()
    env = dict(server_env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", BLACKOUT_DEVICE=DEVICE)
    Path(env["BLACKOUT_CONFIG"]).write_text("pin = 4\n")
    for minute in range(2):
        result = run_script("read_pin.py", "--all-sensors", "--simulate", "--at", f"2025-06-21T19:0{minute}",
                            env=env)
        assert (result.returncode, result.stderr) == (0, "")
    assert link.load(env["BLACKOUT_BUFFER_DIR"]) is not None
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)  # the same tables
    server.start()
    try:
        back = run_script("read_pin.py", "--all-sensors", "--simulate", "--at", "2025-06-21T19:02", env=env)
    finally:
        server.stop()
    assert (back.returncode, back.stdout, back.stderr) == (0, "", "")
    keys = stored_keys(server_client, minute_table(env))
    assert len(keys) == len(set(keys)) == 6
    assert buffer_state(env["BLACKOUT_BUFFER_DIR"])["pending"] == []
    assert link.load(env["BLACKOUT_BUFFER_DIR"]) is None


@pytest.fixture
def down_config(moto_server, server_env, server_client, monkeypatch):
    """A config whose link was recorded down at T0 (the endpoint itself answers: the probe decides)."""
    for name in ("AWS_ENDPOINT_URL", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_DEFAULT_REGION"):
        monkeypatch.setenv(name, server_env[name])
    config = utils.load_config(None, minute_job.JOB_KEYS, {**server_env, "BLACKOUT_DEVICE": DEVICE})
    filebuffer.Buffer(config["buffer_dir"]).write(filebuffer.Reading(DEVICE, "4", T0, {"reading": 0}))
    link.record_down(config["buffer_dir"], moto_server, "Connection refused", T0)
    return config


def count_clients(monkeypatch):
    made = []
    real = dynamo.aws_client
    monkeypatch.setattr(dynamo, "aws_client", lambda *args, **kwargs: made.append(1) or real(*args, **kwargs))
    return made


@pytest.mark.parametrize("minutes_later, probe_says, flushed", [
    (1, "Connection refused", False),   # still down: buffered, no client
    (59, "Name or service not known", False),
    (2, None, True),                    # the probe connects: this very minute flushes
    (60, "Connection refused", True),   # once an hour a full attempt, whatever the probe says
])
def test_a_minute_flushes_as_soon_as_the_link_answers(down_config, server_client, monkeypatch, minutes_later,
                                                      probe_says, flushed):
    made = count_clients(monkeypatch)
    probed = []

    def probe(host, port):
        probed.append((host, port))
        return probe_says

    now = T0 + dt.timedelta(minutes=minutes_later)
    reachable = minute_job.flush_unless_down(down_config, now=now, probe=probe)
    assert reachable is flushed and bool(made) is flushed
    assert filebuffer.Buffer(down_config["buffer_dir"]).count() == (0 if flushed else 1)
    assert (link.load(down_config["buffer_dir"]) is None) is flushed
    if minutes_later < 60:
        assert probed == [link.endpoint_address(os.environ["AWS_ENDPOINT_URL"])]


def test_other_aws_settings_mean_another_endpoint_and_a_full_attempt(down_config, monkeypatch):
    made = count_clients(monkeypatch)
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", os.environ["AWS_ENDPOINT_URL"])
    assert minute_job.flush_unless_down(down_config, now=T0 + dt.timedelta(minutes=1),
                                        probe=lambda host, port: "refused") is True
    assert made and filebuffer.Buffer(down_config["buffer_dir"]).count() == 0


def test_the_notifier_is_told_when_the_link_is_down(down_config, monkeypatch):
    finished = []

    class Notifier:
        def observe(self, reading):
            pass

        def finish(self, send=True, link_up=True):
            finished.append(link_up)

    class Args:
        at = until = None
        simulate, no_flush = True, False

    monkeypatch.setattr(link, "connects", lambda host, port: "Connection refused")
    monkeypatch.setattr(minute_job, "utc_now", lambda: T0 + dt.timedelta(minutes=1, seconds=3))
    made = count_clients(monkeypatch)
    minute_job.run_all(down_config, Args(), [("4", lambda at: {"reading": 1})], notifier=Notifier())
    assert finished == [False] and made == []
    monkeypatch.setattr(link, "connects", lambda host, port: None)
    minute_job.run_all(down_config, Args(), [("4", lambda at: {"reading": 1})], notifier=Notifier())
    assert finished == [False, True] and made


def test_the_probe_connects_only_where_something_listens(moto_server):
    assert link.connects(*link.endpoint_address(moto_server)) is None
    assert "refused" in link.connects("127.0.0.1", free_port()).lower()
    assert link.endpoint_address("https://dynamodb.eu-central-1.amazonaws.com") == (
        "dynamodb.eu-central-1.amazonaws.com", 443)
    assert link.endpoint_address("http://[::1]:8000/") == ("::1", 8000)


# --- SIGKILL in the middle of offline minutes ----------------------------------------------------

# read_pin.py as cron runs it, killed with SIGKILL at its argv[1]-th write, fsync, rename or
# unlink: every point where a crash could leave the buffer or the link state half done.
KILLED_AT = """
import os, runpy, signal, sys
kill_at, sys.argv = int(sys.argv[1]), sys.argv[2:]
sys.path.insert(0, {project!r})
calls = [0]
def killing(function):
    def call(*args, **kwargs):
        calls[0] += 1
        if calls[0] == kill_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return function(*args, **kwargs)
    return call
for name in ("write", "fsync", "rename", "unlink"):
    setattr(os, name, killing(getattr(os, name)))
runpy.run_path(sys.argv[0], run_name="__main__")
"""


def test_sigkill_during_offline_minutes_loses_nothing(server_env, server_client):
    from moto.server import ThreadedMotoServer

    port = free_port()
    env = dict(server_env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", BLACKOUT_DEVICE=DEVICE)
    Path(env["BLACKOUT_CONFIG"]).write_text("pin = 4\n")
    buffer_dir = env["BLACKOUT_BUFFER_DIR"]
    first = run_script("read_pin.py", "--all-sensors", "--simulate", "--at", "2025-06-21T10:00", env=env)
    assert first.returncode == 0 and link.load(buffer_dir) is not None
    seen = set(buffer_state(buffer_dir)["pending"])
    killed = 0
    for point in range(1, 40):  # each run one minute later, killed one step further into it
        at = (T0 + dt.timedelta(minutes=point)).strftime("%Y-%m-%dT%H:%M")
        run = subprocess.run([sys.executable, "-c", KILLED_AT.format(project=str(PROJECT_DIR)), str(point),
                              str(PROJECT_DIR / "read_pin.py"), "--all-sensors", "--simulate", "--at", at],
                             env=env, capture_output=True, text=True, timeout=120)
        state = buffer_state(buffer_dir)
        assert state["bad"] == [] and seen <= set(state["pending"])  # nothing buffered before is gone
        store = filebuffer.Buffer(buffer_dir)
        for name in state["pending"]:  # and every file is whole
            filebuffer.parse_reading((store.directory / name).read_text())
        seen |= set(state["pending"])
        if run.returncode == -signal.SIGKILL:
            killed += 1
            continue
        assert (run.returncode, run.stderr) == (0, "")
        break  # the run outlived its last write: every point was tried
    assert killed >= 6  # the reading files' writes, fsyncs and renames, the log, the pin's state
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        back = run_script("read_pin.py", "--all-sensors", "--simulate", env=env)
    finally:
        server.stop()
    assert (back.returncode, back.stderr) == (0, "")
    keys = stored_keys(server_client, minute_table(env))
    assert len(keys) == len(set(keys)) == len(seen) + 2  # + the last minute's two readings
    assert buffer_state(buffer_dir)["pending"] == [] and link.load(buffer_dir) is None
