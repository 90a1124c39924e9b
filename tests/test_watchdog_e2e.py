"""watchdog.py end to end: the real scripts as subprocesses against moto's server, the Pi's
readings from `read_pin.py --simulate`, announcements to a webhook receiver on 127.0.0.1."""

import subprocess
import threading

import pytest

from tests.conftest import PROJECT_DIR, PYTHON, free_port, run_script
from tests.fakehttp import FakeServer

DEVICE = "alex_rpi"


@pytest.fixture
def env(server_env, server_client, webhook):
    return {**server_env, "BLACKOUT_WEBHOOK_URL": f"{webhook.url}/hook", "BLACKOUT_DEVICE": DEVICE}


def readings(env, value, start, until):
    """What the Pi buffered and flushed: one simulated pin reading a minute."""
    result = run_script("read_pin.py", "--pin", "4", "--simulate", "--value", value,
                        "--at", start, "--until", until, env=env)
    assert result.returncode == 0, result.stderr


def watch(env, at, *args):
    result = run_script("watchdog.py", "--at", at, *args, env=env)
    assert result.returncode == 0 and result.stdout == "" and result.stderr == "", result.stderr
    return result


def events(server):
    return [(r.body["event"], r.body.get("cause")) for r in server.delivered()]


@pytest.mark.parametrize("cause, backlog, back_at, texts", [
    ("power", [("0", "2025-06-21T22:31", "2025-06-22T01:30"), ("1", "2025-06-22T01:30", "2025-06-22T01:32")],
     ["2025-06-22T01:32:30"],
     ["No word from alex_rpi since 22:30 UTC (5 min): power or internet is down there",
      "alex_rpi is back: the power was OFF 2025-06-21 22:31–01:30 UTC (2 h 59 min)"]),
    ("link", [("1", "2025-06-21T22:31", "2025-06-21T23:11")], ["2025-06-21T23:11:30"],
     ["No word from alex_rpi since 22:30 UTC (5 min): power or internet is down there",
      "alex_rpi is back: the power stayed ON; the internet was down 22:30–23:10 UTC"]),
    ("unknown", [("1", "2025-06-22T01:30", "2025-06-22T01:32")], ["2025-06-22T01:32:30", "2025-06-22T01:37:30"],
     ["No word from alex_rpi since 22:30 UTC (5 min): power or internet is down there",
      "alex_rpi is back after 3 h 0 min of silence (2025-06-21 22:30–01:30 UTC) without readings of that "
      "time: the Pi itself was down, so the cause is unknown"]),
])
def test_each_cause_is_two_messages(env, webhook, cause, backlog, back_at, texts):
    readings(env, "1", "2025-06-21T22:00", "2025-06-21T22:31")
    watch(env, "2025-06-21T22:34:59")  # the last reading was at 22:30:00: not yet 5 minutes
    watch(env, "2025-06-21T22:35:30")
    watch(env, "2025-06-21T22:37:30")
    for value, start, until in backlog:
        readings(env, value, start, until)
    for minute in back_at:
        watch(env, minute)
    readings(env, "1", backlog[-1][2], "2025-06-22T02:01")  # and it carries on
    watch(env, "2025-06-22T02:00:30")
    assert events(webhook) == [("silent", None), ("back", cause)], [r.body["text"] for r in webhook.delivered()]
    assert [r.body["text"] for r in webhook.delivered()] == texts
    status = run_script("dynamo.py", "status", "--device", DEVICE, env=env)
    assert status.returncode == 0
    # however old the readings are (these are of 2025), status finds them; the silence as told
    ended = {"power": "2025-06-22 01:31", "link": "2025-06-21 23:10", "unknown": "2025-06-22 01:30"}[cause]
    assert (f"watchdog: {DEVICE}: last word 2025-06-22 02:00 UTC; not silent (last silence "
            f"2025-06-21 22:30–{ended} UTC)") in status.stdout, status.stdout


def test_three_overlapping_runs_announce_once(env, webhook):
    readings(env, "1", "2025-06-21T22:00", "2025-06-21T22:31")
    runs = [subprocess.Popen([PYTHON, str(PROJECT_DIR / "watchdog.py"), "--at", "2025-06-21T22:35:30"],
                             env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            for _ in range(3)]
    for process in runs:
        _out, err = process.communicate(timeout=120)
        assert process.returncode == 0, err
    assert events(webhook) == [("silent", None)] and len(webhook.requests) == 1


def test_channel_down_during_the_announcement_sends_it_later_once(env, webhook):
    readings(env, "1", "2025-06-21T22:00", "2025-06-21T22:31")
    webhook.down = True
    result = run_script("watchdog.py", "--at", "2025-06-21T22:35:30", env=env)
    assert result.returncode == 0 and webhook.dropped >= 1 and webhook.requests == []
    webhook.down = False
    watch(env, "2025-06-21T22:37:30")
    watch(env, "2025-06-21T22:38:30")
    assert events(webhook) == [("silent", None)] and len(webhook.requests) == 1


def test_crash_between_send_and_record_is_sent_again_under_the_same_key(env):
    """The receiver holds its answer until the watchdog is killed: it got the announcement, the
    watchdog never recorded it. The next run after the lease sends it again, same key."""
    arrived, release = threading.Event(), threading.Event()

    def answer(path):
        if not arrived.is_set():
            arrived.set()
            release.wait(60)
        return 200, {"received": True}, {}

    receiver = FakeServer(answer)
    try:
        env = {**env, "BLACKOUT_WEBHOOK_URL": f"{receiver.url}/hook"}
        readings(env, "1", "2025-06-21T22:00", "2025-06-21T22:31")
        process = subprocess.Popen([PYTHON, str(PROJECT_DIR / "watchdog.py"), "--at", "2025-06-21T22:35:30"],
                                   env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        assert arrived.wait(120)
        process.kill()
        process.communicate(timeout=60)
        release.set()
        watch(env, "2025-06-21T22:35:50")  # within the lease: left alone
        watch(env, "2025-06-21T22:38:30")
        watch(env, "2025-06-21T22:39:30")
        first, again = receiver.requests
        assert first.headers["Idempotency-Key"] == again.headers["Idempotency-Key"] == first.body["id"]
        assert first.body == again.body and first.body["event"] == "silent"
    finally:
        release.set()
        receiver.close()


def test_device_never_seen_and_device_with_a_wrong_clock(env, webhook):
    """A device never seen is said once (stderr: cron mails it), then nothing. A Pi whose clock
    runs half an hour ahead files its readings under future minutes: while new ones come it is
    not silent; its clock is told once; when it stops, its silence is told from when it stopped."""
    fast = {**env, "BLACKOUT_DEVICE": "fast_clock"}
    readings(fast, "1", "2025-06-21T22:50", "2025-06-21T23:06")  # 22:20..22:36 stamped 30 min ahead
    result = run_script("watchdog.py", "--device", "ghost", "--device", "fast_clock", "--at", "2025-06-21T22:35:30",
                        env=env)
    assert result.returncode == 0 and result.stdout == ""
    assert result.stderr.count("ghost has no reading in the last 72 hours") == 1
    assert "fast_clock" not in result.stderr
    readings(fast, "1", "2025-06-21T23:06", "2025-06-21T23:07")  # 22:36: its last reading
    watch(env, "2025-06-21T22:36:30", "--device", "ghost", "--device", "fast_clock")
    for minute in range(37, 43):
        watch(env, f"2025-06-21T22:{minute}:30", "--device", "ghost", "--device", "fast_clock")
    assert [r.body["text"] for r in webhook.delivered()] == [
        "fast_clock's clock is 30 min ahead: the watchdog corrects the times it tells, but the readings are "
        "filed under the wrong minutes; check the Pi's time sync (NTP)",
        "No word from fast_clock since 22:36 UTC (5 min): power or internet is down there"]
    assert webhook.delivered()[1].body["silent_since"] == "2025-06-21T23:06:00.000000+00:00"  # its own stamp


@pytest.mark.parametrize("args, message", [
    (["--at", "yesterday"], "--at 'yesterday' is not an ISO 8601 time"),
    (["--at", "2025-06-21T22:36", "--silent-after", "0"], "--silent-after must be a whole number from 1 to 1440"),
    (["--silent-after", "five"], "--silent-after must be a whole number from 1 to 1440, got 'five'"),
    (["--device", "a b"], "--device 'a b' is not a valid device name"),
    (["--device", "ok", "--device", "a#b"], "--device 'a#b' is not a valid device name"),
])
def test_bad_flags_exit_2_with_one_line(env, args, message):
    result = run_script("watchdog.py", *args, env=env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.strip().splitlines() == [f"Error: {result.stderr.strip()[7:]}"]
    assert message in result.stderr and "Traceback" not in result.stderr


def test_bad_watch_key_exits_2(env):
    result = run_script("watchdog.py", env={**env, "BLACKOUT_WATCH": "alex_rpi bad*name"})
    assert result.returncode == 2 and "BLACKOUT_WATCH 'bad*name' is not a valid device name" in result.stderr


def test_dynamodb_unreachable_exits_1(env):
    result = run_script("watchdog.py", "--at", "2025-06-21T22:36",
                        env={**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.returncode == 1 and "Traceback" not in result.stderr
    assert result.stderr.count("DynamoDB unreachable") == 1


def test_run_parts_runs_the_watchdog_cron_script(env, webhook, tmp_path):
    """cron_example/cron.minutes.watchdog: quiet on success; config.toml says what to watch."""
    from pathlib import Path

    readings(env, "1", "2025-06-21T22:00", "2025-06-21T22:31")
    Path(env["BLACKOUT_CONFIG"]).write_text('watch = ["alex_rpi"]\nsilent_after = 10\n')
    script_env = {**env, "PYTHON": PYTHON, "OPTIONS": "--at 2025-06-21T22:39"}
    script_env.pop("BLACKOUT_DEVICE")
    command = ["run-parts", "--report", str(PROJECT_DIR / "cron_example" / "cron.minutes.watchdog")]
    result = subprocess.run(command, env=script_env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert webhook.requests == []  # 9 minutes: silent_after is 10 here
    script_env["OPTIONS"] = "--at 2025-06-21T22:41"
    result = subprocess.run(command, env=script_env, capture_output=True, text=True, timeout=120)
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    assert events(webhook) == [("silent", None)]
    listing = subprocess.run(["git", "ls-files", "-s", "cron_example/cron.minutes.watchdog"], cwd=PROJECT_DIR,
                             capture_output=True, text=True).stdout
    assert listing.startswith("100755 ")
