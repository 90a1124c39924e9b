"""Faults a Pi on a flaky link meets: no reading lost or stored twice, every bad input refused.

Each test prints one summary line (`pytest -s` shows them): what was injected, and the
readings expected, stored, duplicated and quarantined.
"""

import datetime as dt
import os
import random
import signal
import subprocess
import sys

import boto3
import pytest

import dynamo
import filebuffer
import minute_job
import read_pin
import utils
from tests.conftest import (FAKE_CREDENTIALS, PROJECT_DIR, SCRIPT_TIMEOUT_SECONDS, aggregate_until_done,
                            flush_until_empty, free_port, run_script)
from tests.faultproxy import FaultProxy, buffer_state, put_keys, scan_items, stored_keys

UTC = dt.timezone.utc
DEVICE = "alex_rpi"
START = dt.datetime(2025, 6, 21, tzinfo=UTC)


def summary(name, **figures):
    print(f"\n[fault] {name}: " + ", ".join(f"{key} {value}" for key, value in figures.items()))


def client_for(endpoint):
    return boto3.client("dynamodb", endpoint_url=endpoint, region_name="us-east-1",
                        aws_access_key_id="testing", aws_secret_access_key="testing")


def minute_table(env):
    return f"{env['BLACKOUT_TABLE_PREFIX']}-minutes"


def fill(buffer_dir, count, start=START, sensor="4"):
    store = filebuffer.Buffer(buffer_dir)
    readings = [filebuffer.Reading(DEVICE, sensor, start + dt.timedelta(minutes=m, seconds=1), {"reading": m % 3 and 1})
                for m in range(count)]
    for reading in readings:
        store.write(reading)
    return {dynamo.minute_key(r.device, r.sensor, r.ts) for r in readings}


def statistics(client, prefix, kind):
    """{(pk, sk): attributes without ts} of a hours or days table."""
    return {(item["pk"], item["sk"]): {k: v for k, v in item.items() if k not in ("pk", "sk", "ts")}
            for item in map(dynamo.plain, scan_items(client, f"{prefix}-{kind}")) if "#date#" in item["pk"]}


# --- 1. offline for days ----------------------------------------------------------------------

@pytest.mark.slow
def test_offline_for_three_days_then_everything_lands_once(server_env, server_client, moto_server, tmp_path):
    span = ["--simulate", "--at", "2025-06-21T00:00", "--until", "2025-06-24T00:00"]
    offline = dict(server_env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    for script, args in (("read_pin.py", ["--device", DEVICE, "--pin", "4"]), ("read_env.py", ["--device", DEVICE])):
        result = run_script(script, *args, *span, env=offline)
        assert (result.returncode, result.stderr) == (0, "")
    assert len(buffer_state(server_env["BLACKOUT_BUFFER_DIR"])["pending"]) == 2 * 3 * 1440
    runs = flush_until_empty(server_env)
    keys = stored_keys(server_client, minute_table(server_env))
    assert len(keys) == len(set(keys)) == 8640
    aggregate_until_done(server_env, "--device", DEVICE)

    # the same readings flushed on time, into other tables
    on_time = dict(server_env, BLACKOUT_TABLE_PREFIX=server_env["BLACKOUT_TABLE_PREFIX"] + "-ontime",
                   BLACKOUT_BUFFER_DIR=str(tmp_path / "ontime-buffer"))
    assert run_script("dynamo.py", "create-tables", env=on_time).returncode == 0
    for day in range(3):
        at = ["--simulate", "--at", f"2025-06-{21 + day}T00:00", "--until", f"2025-06-{22 + day}T00:00"]
        assert run_script("read_pin.py", "--device", DEVICE, "--pin", "4", *at, env=on_time).returncode == 0
        assert run_script("read_env.py", "--device", DEVICE, *at, env=on_time).returncode == 0
        flush_until_empty(on_time)  # what a slow machine's minute jobs left for the next flush
        aggregate_until_done(on_time, "--device", DEVICE)
    for kind in ("hours", "days"):
        late = statistics(server_client, server_env["BLACKOUT_TABLE_PREFIX"], kind)
        prompt = statistics(server_client, on_time["BLACKOUT_TABLE_PREFIX"], kind)
        assert late == prompt and len(late) == (144 if kind == "hours" else 6)
    summary("offline 3 days", injected="endpoint on a closed port for 8640 readings", flush_runs=runs,
            expected=8640, stored=len(keys), duplicated=len(keys) - len(set(keys)), quarantined=0,
            aggregates="equal to on-time")


# --- 2. killed mid-flush ----------------------------------------------------------------------

@pytest.mark.slow
def test_sigkill_mid_flush_loses_and_corrupts_nothing(moto_server, server_env, server_client, monkeypatch):
    """`dynamo.py flush` SIGKILLed 50 times, each while its k-th BatchWriteItem is held in the
    fault proxy: k is drawn (seeded) from the second and third rounds of FLUSH_WORKERS batches
    (each followed by a batch of markers), so the first round was acknowledged and its files removed, and the batches beside k may be
    mid-removal. The held batch was either written with its answer lost or never sent. No
    clock decides where a kill lands, so every one lands mid-flush on any machine."""
    rng = random.Random(20251123)
    trials, per_trial = 50, 150
    expected, mid_flush, written_unacknowledged, largest = set(), 0, 0, 0
    buffer_dir = server_env["BLACKOUT_BUFFER_DIR"]
    store = filebuffer.Buffer(buffer_dir)
    with FaultProxy(moto_server) as proxy:
        env = dict(server_env, AWS_ENDPOINT_URL=proxy.url)
        for trial in range(trials):
            with monkeypatch.context() as setup:  # fsync guards against power loss, not SIGKILL: skip it
                setup.setattr(os, "fsync", lambda fd: None)
                expected |= fill(buffer_dir, per_trial, start=START + dt.timedelta(days=trial))
            before = len(buffer_state(buffer_dir)["pending"])
            largest = max(largest, before)
            batches = -(-before // dynamo.BATCH_LIMIT)  # every reading has its own minute: no collapsing
            forward = rng.random() < 0.5
            # a round is FLUSH_WORKERS batches of readings, then one of their hours' markers
            k = rng.randrange(dynamo.FLUSH_WORKERS + 1, min(batches, 3 * (dynamo.FLUSH_WORKERS + 1)))
            hold = proxy.hold("BatchWriteItem", k, forward=forward)
            process = subprocess.Popen([sys.executable, str(PROJECT_DIR / "dynamo.py"), "flush"], env=env,
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            reached = hold.wait(process)
            process.kill()
            stderr = process.communicate()[1].decode()
            proxy.release()
            assert reached and process.returncode == -signal.SIGKILL, (trial, process.returncode, stderr)
            assert proxy.wait_idle()
            state = buffer_state(buffer_dir)
            mid_flush += 0 < len(state["pending"]) < before
            left = {dynamo.minute_key(r.device, r.sensor, r.ts)  # every file left is whole
                    for r in (filebuffer.parse_reading((store.directory / name).read_text())
                              for name in state["pending"])}
            held = {(pk, sk) for entry in hold.held for _, pk, sk in put_keys(entry.body)}
            # a held batch of readings: unacknowledged, so still buffered; a held batch of the
            # markers of their hours (written after each round's readings): those readings too
            held_minutes = {key for key in held if "#date#" in key[0]}
            held_hours = {sk.split("#", 1)[1] for pk, sk in held if pk.endswith("#status#new")}
            assert held and held_minutes <= left
            assert held_hours <= {pk.rsplit("#", 1)[1] for pk, _sk in left}
            written_unacknowledged += forward
            assert state["bad"] == []
    assert mid_flush == trials, f"only {mid_flush} of {trials} kills landed mid-flush"
    assert 0 < written_unacknowledged < trials
    result = run_script("dynamo.py", "flush", env=server_env)
    assert (result.returncode, result.stderr) == (0, "")
    keys = stored_keys(server_client, minute_table(server_env))
    assert set(keys) == expected and len(keys) == len(expected) == trials * per_trial
    assert buffer_state(buffer_dir)["pending"] == []
    summary("SIGKILL mid-flush", trials=trials, killed_mid_flush=mid_flush,
            held_batch_written_unacknowledged=written_unacknowledged, largest_backlog=largest, expected=len(expected),
            stored=len(keys), duplicated=len(keys) - len(set(keys)), quarantined=0)


# --- 3. a hostile network ---------------------------------------------------------------------

def test_a_hostile_network_loses_nothing(moto_server, server_env, server_client, monkeypatch, config):
    """Throttling, 500s, partial batches, resets, lost answers and requests held until the
    client's own read timeout gave up on them, on 30 % of the requests."""
    for name, value in FAKE_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    config.update(table_prefix=server_env["BLACKOUT_TABLE_PREFIX"], buffer_dir=server_env["BLACKOUT_BUFFER_DIR"])
    expected = fill(config["buffer_dir"], 500)
    faults = {"throttle": 1, "provisioned": 1, "500": 1, "partial": 3, "reset": 1, "delay": 1, "drop": 1}
    with FaultProxy(moto_server, rate=0.3, seed=7, faults=faults) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.url)
        runs = 0
        while filebuffer.Buffer(config["buffer_dir"]).count():
            runs += 1
            assert runs <= 15, proxy.fault_counts()
            dynamo.flush_and_report(config)
        assert proxy.wait_idle()
        requests, faults_seen = len(proxy.requests()), proxy.fault_counts()
        delayed = [entry.gave_up for entry in proxy.requests() if entry.fault == "delay"]
    keys = stored_keys(server_client, minute_table(server_env))
    assert set(keys) == expected and len(keys) == 500
    assert requests <= 200  # 20 batches of 25 when nothing goes wrong; retries stay bounded
    injected = {kind: count for kind, count in faults_seen.items() if kind != "none"}
    assert len(injected) >= 5, faults_seen
    assert delayed and all(delayed)  # each delayed write landed after its client had given up
    summary("hostile network", injected=injected, requests=requests, flush_runs=runs, expected=500,
            stored=len(keys), duplicated=len(keys) - len(set(keys)), quarantined=0)


# --- 4. bad buffer files ----------------------------------------------------------------------

BAD_FILES = {
    "20250620T000000.000000Z-alex_rpi-4.json": b"",
    "20250620T000100.000000Z-alex_rpi-4.json": b'{"format": 1, "device": "alex_rpi", "sensor": "4", "ts": "2025-',
    "20250620T000200.000000Z-alex_rpi-4.json": bytes(range(256)),
    "20250620T000300.000000Z-alex_rpi-4.json": b'{"format": 1, "device": "alex_rpi", "sensor": "4"}',
    "20250620T000400.000000Z-alex_rpi-4.json": (b'{"format": 1, "device": "alex_rpi", "sensor": "4", '
                                                b'"ts": "2025-06-20T00:04:00+00:00", "reading": "on"}'),
    "20250620T000500.000000Z-alex_rpi-4.json": (b'{"format": 9, "device": "alex_rpi", "sensor": "4", '
                                                b'"ts": "2025-06-20T00:05:00+00:00", "reading": 1}'),
}


def test_bad_buffer_files_are_quarantined_and_the_good_land(server_env, server_client):
    buffer_dir = server_env["BLACKOUT_BUFFER_DIR"]
    expected = fill(buffer_dir, 40)
    for name, content in BAD_FILES.items():
        with open(os.path.join(buffer_dir, name), "wb") as handle:
            handle.write(content)
    unreadable = "20250620T000600.000000Z-alex_rpi-4.json"  # a directory by a reading's name: open() fails,
    os.mkdir(os.path.join(buffer_dir, unreadable))          # even for root, where chmod 000 would not
    result = run_script("dynamo.py", "flush", env=server_env)
    assert (result.returncode, result.stdout) == (0, "")
    state = buffer_state(buffer_dir)
    assert state["pending"] == [] and state["bad"] == sorted([*BAD_FILES, unreadable])
    log = "".join(open(os.path.join(server_env["BLACKOUT_LOG_DIR"], n)).read()
                  for n in os.listdir(server_env["BLACKOUT_LOG_DIR"]))
    assert all(log.count(f"moved bad buffer file {name}") == 1 for name in [*BAD_FILES, unreadable])
    keys = stored_keys(server_client, minute_table(server_env))
    assert set(keys) == expected and len(keys) == 40
    summary("bad buffer files", injected=len(BAD_FILES) + 1, expected=40, stored=len(keys),
            duplicated=len(keys) - len(set(keys)), quarantined=len(state["bad"]))


# --- 5. overlapping cron ----------------------------------------------------------------------

@pytest.mark.slow
def test_overlapping_cron_sends_nothing_twice_and_loses_no_aggregate(moto_server, server_env, server_client):
    with FaultProxy(moto_server) as proxy:
        env = dict(server_env, AWS_ENDPOINT_URL=proxy.url)
        rounds, readers, sent_twice = 4, 4, 0
        for round_ in range(rounds):
            proxy.reset()
            processes = [subprocess.Popen(
                [sys.executable, str(PROJECT_DIR / "read_pin.py"), "--device", DEVICE, "--pin", "4", "--simulate",
                 "--at", f"2025-06-21T{10 + round_:02d}:{reader:02d}", "--until",
                 f"2025-06-21T{10 + round_:02d}:{reader + 1:02d}"], env=env) for reader in range(readers)]
            processes += [subprocess.Popen([sys.executable, str(PROJECT_DIR / "aggregate.py"), "--device", DEVICE],
                                           env=env) for _ in range(2)]
            assert [process.wait(timeout=SCRIPT_TIMEOUT_SECONDS) for process in processes] == [0] * (readers + 2)
            flushed = flushed_keys(proxy)
            assert len(flushed) == len(set(flushed))  # no reading sent twice in a round
            sent_twice += len(flushed) - len(set(flushed))
    assert run_script("dynamo.py", "flush", env=server_env).returncode == 0
    assert run_script("aggregate.py", "--device", DEVICE, env=server_env).returncode == 0
    keys = stored_keys(server_client, minute_table(server_env))
    assert len(keys) == len(set(keys)) == rounds * readers
    hours = statistics(server_client, server_env["BLACKOUT_TABLE_PREFIX"], "hours")
    assert sorted(stats["count"] for stats in hours.values()) == [readers] * rounds
    summary("overlapping cron", rounds=rounds, processes_per_round=readers + 2, expected=rounds * readers,
            stored=len(keys), sent_twice=sent_twice, quarantined=0, hours_complete=len(hours))


def flushed_keys(proxy):
    """(pk, sk) of every reading a flush sent (minute items; not the markers of new hours, which
    a late reading's flush writes again by design), one entry per sending."""
    keys = []
    for entry in proxy.requests("BatchWriteItem"):
        for table, requests in entry.body.get("RequestItems", {}).items():
            for request in requests:
                item = request.get("PutRequest", {}).get("Item", {})
                if table.endswith("-minutes") and "#date#" in item.get("pk", {}).get("S", ""):
                    keys.append((item["pk"]["S"], item["sk"]["S"]))
    return keys


# --- 6. bad clock -----------------------------------------------------------------------------

@pytest.mark.parametrize("clock", [dt.datetime(1970, 1, 1, 0, 5, tzinfo=UTC), dt.datetime(2019, 3, 1, tzinfo=UTC)])
def test_a_reading_with_a_bad_clock_is_held_and_the_next_good_one_flows(dynamodb, config, monkeypatch, clock):
    for key in ("table_prefix", "buffer_dir", "log_dir"):
        monkeypatch.setenv(f"BLACKOUT_{key.upper()}", str(config[key]))
    monkeypatch.setattr(minute_job, "utc_now", lambda: clock)
    code = utils.run_cli(read_pin.main, ["--device", DEVICE, "--pin", "4", "--simulate", "--value", "0"])
    assert code == utils.EXIT_FAILED  # cron mails it: someone has to fix the clock
    state = buffer_state(config["buffer_dir"])
    assert state["held"] and state["pending"] == []
    assert stored_keys(dynamodb, "test-bm-minutes") == []
    monkeypatch.setattr(minute_job, "utc_now", lambda: dt.datetime(2025, 6, 21, 19, tzinfo=UTC))
    assert utils.run_cli(read_pin.main, ["--device", DEVICE, "--pin", "4", "--simulate", "--value", "1"]) == 0
    assert stored_keys(dynamodb, "test-bm-minutes") == [("device#alex_rpi#sensor#4#date#2025-06-21-19", "time#00")]
    summary("bad clock", injected=clock.isoformat(), expected=1, stored=1, duplicated=0, quarantined=0, held=1)


# --- 7. disk full, or a buffer that can't be written ------------------------------------------

def test_a_full_disk_fails_the_job_and_keeps_what_was_buffered(dynamodb, config, monkeypatch, capsys):
    for key in ("table_prefix", "buffer_dir", "log_dir"):
        monkeypatch.setenv(f"BLACKOUT_{key.upper()}", str(config[key]))
    already = fill(config["buffer_dir"], 3)
    real_write = os.write

    def full(fd, data):
        if b'"format"' in data:  # reading files only: the log keeps working
            raise OSError(28, "No space left on device")
        return real_write(fd, data)

    monkeypatch.setattr(os, "write", full)
    code = utils.run_cli(read_pin.main, ["--device", DEVICE, "--pin", "4", "--simulate", "--value", "1", "--no-flush"])
    assert code == utils.EXIT_FAILED
    err = capsys.readouterr().err
    assert "No space left on device" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    monkeypatch.setattr(os, "write", real_write)
    assert len(buffer_state(config["buffer_dir"])["pending"]) == 3 and buffer_state(config["buffer_dir"])["temps"] == []
    dynamo.flush(config)
    assert set(stored_keys(dynamodb, "test-bm-minutes")) == already
    summary("disk full", injected="ENOSPC on the reading's write", expected=3, stored=3, duplicated=0, quarantined=0)


@pytest.mark.parametrize("below", ["buffer", ""], ids=["file-above-it", "file-itself"])
def test_a_buffer_that_is_not_a_directory_fails_with_exit_1(server_env, tmp_path, below):
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("")
    buffer_dir = blocked / below if below else blocked
    result = run_script("read_pin.py", "--device", DEVICE, "--pin", "4", "--simulate", "--value", "1",
                        env=dict(server_env, BLACKOUT_BUFFER_DIR=str(buffer_dir)))
    assert result.returncode == 1
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: can't create buffer directory {buffer_dir}: ")
    assert "not a directory" in lines[0].lower() and "File exists" not in lines[0]


# --- 8. bad input everywhere ------------------------------------------------------------------

BAD_VALUES = ["", "   ", "a#b", "x" * 100_000, "\n", True, 3.5, [1], {"a": 1}, -1, 10 ** 30]
CONFIG_KEYS = [key for key in utils.KEYS if key not in ("telegram_api_url",)]


def toml_value(value):
    import json

    if isinstance(value, dict):
        return "{ a = 1 }"
    if isinstance(value, bool):
        return "true" if value else "false"
    return json.dumps(value)


@pytest.mark.parametrize("key", CONFIG_KEYS)
def test_every_key_refuses_wrong_types_and_sizes_in_one_line(tmp_path, key):
    refused = 0
    for value in BAD_VALUES:
        path = tmp_path / "config.toml"
        path.write_text(f"{key} = {toml_value(value)}\n")
        try:
            utils.load_config(None, (key,), {"BLACKOUT_CONFIG": str(path)})
        except utils.ConfigError as error:
            message = utils.one_line(error)
            assert "\n" not in message and len(message) <= utils.MESSAGE_LIMIT
            refused += 1
    # a few are valid for some keys: a path may contain '#', -1 is a Telegram group's chat id
    assert refused >= len(BAD_VALUES) - 2


@pytest.mark.parametrize("script, name, value", [
    ("read_pin.py", "BLACKOUT_DEVICE", "alex rpi"), ("read_pin.py", "BLACKOUT_DEVICE", "alex/rpi"),
    ("read_pin.py", "BLACKOUT_DEVICE", "x" * 65), ("read_pin.py", "BLACKOUT_DEVICE", "é"),
    ("read_pin.py", "BLACKOUT_TABLE_PREFIX", "a#b"), ("read_pin.py", "BLACKOUT_PIN", "4.0"),
    ("read_pin.py", "BLACKOUT_PIN", "0x1c"), ("read_pin.py", "BLACKOUT_NOTIFY_AFTER", "0"),
    ("read_pin.py", "BLACKOUT_TIMEZONE", "Mars/Olympus"), ("read_env.py", "BLACKOUT_ADDRESS", "0"),
    ("read_env.py", "BLACKOUT_BUS", "1e3"), ("aggregate.py", "BLACKOUT_S3_BUCKET", "a..b"),
    ("dynamo.py", "BLACKOUT_RETENTION_DAYS", "-5"),
])
def test_bad_environment_values_from_a_real_process(server_env, script, name, value):
    args = {"read_pin.py": ["--simulate"], "read_env.py": ["--simulate"], "aggregate.py": [],
            "dynamo.py": ["create-tables"]}[script]
    result = run_script(script, *args, env=dict(server_env, **{name: value}))
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2 and len(lines) == 1 and lines[0].startswith("Error: ") and name in lines[0], lines
    assert "Traceback" not in result.stderr
