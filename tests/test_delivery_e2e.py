"""Every outage told (#22), end to end: the real read_pin.py and watchdog.py as subprocesses
against moto's server, a webhook receiver on 127.0.0.1 as the channel both configure.

A representative subset of the delivery matrix (the full matrix runs in process, in
tests/test_delivery.py): DynamoDB down with the channel reachable (the router up, the ISP or
AWS down), with the watchdog's channel the Pi's own or none.
"""

import subprocess

import pytest

from tests.conftest import PROJECT_DIR, PYTHON, free_port, run_script

DEVICE = "alex_rpi"


def minute(env, value, *args, importtime=False):
    """One live minute of read_pin.py (a single reading: its notifications are sent)."""
    command = [PYTHON, *(["-X", "importtime"] if importtime else []), str(PROJECT_DIR / "read_pin.py"),
               "--pin", "4", "--simulate", "--value", value, *args]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=120, cwd=PROJECT_DIR)
    assert result.returncode == 0, result.stderr
    return result


def imported(result):
    """The modules a run imported, from -X importtime's lines on stderr."""
    return {line.split("|")[-1].strip() for line in result.stderr.splitlines() if line.startswith("import time:")}


def test_a_power_change_goes_out_while_dynamodb_is_unreachable(server_env, webhook):
    env = {**server_env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}",  # nothing listens there
           "BLACKOUT_WEBHOOK_URL": f"{webhook.url}/hook", "BLACKOUT_DEVICE": DEVICE}
    minute(env, "1")  # the flush finds DynamoDB unreachable: recorded down
    quiet = minute(env, "1", importtime=True)  # the link known down, nothing queued
    assert "channels" not in imported(quiet) and "botocore" not in imported(quiet)
    assert webhook.requests == []
    told = minute(env, "0", importtime=True)  # the power goes: told at once, DynamoDB or not
    assert "channels" in imported(told) and "botocore" not in imported(told)
    assert [request.body["state"] for request in webhook.delivered()] == ["off"]
    minute(env, "0")
    assert len(webhook.requests) == 1  # delivered once


@pytest.mark.parametrize("watchdog_has_the_channel", [True, False])
def test_the_watchdogs_delivered_story_replaces_the_pis_messages(server_env, server_client, webhook,
                                                                 watchdog_has_the_channel):
    """Only where the watchdog's story was delivered: a watchdog with no channel of its own
    announces to nobody, and the Pi tells the outage itself."""
    env = {**server_env, "BLACKOUT_WEBHOOK_URL": f"{webhook.url}/hook", "BLACKOUT_DEVICE": DEVICE}
    watchdog_env = env if watchdog_has_the_channel else {
        name: value for name, value in env.items() if name != "BLACKOUT_WEBHOOK_URL"}
    cut_off = {**env, "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}  # the router is off
    result = run_script("read_pin.py", "--pin", "4", "--simulate", "--value", "1",
                        "--at", "2025-06-21T22:00", "--until", "2025-06-21T22:30", env=env)
    assert result.returncode == 0, result.stderr
    minute(env, "1", "--at", "2025-06-21T22:30")
    minute(cut_off, "0", "--at", "2025-06-21T22:31")  # power OFF: told at once, on the LAN
    assert [request.body.get("state") for request in webhook.delivered()] == ["off"]
    result = run_script("watchdog.py", "--at", "2025-06-21T22:35:30", env=watchdog_env)
    assert result.returncode == 0, result.stderr
    said = ["silent"] if watchdog_has_the_channel else []
    assert [request.body.get("event") for request in webhook.delivered() if "event" in request.body] == said
    minute(cut_off, "0", "--at", "2025-06-21T22:32", "--until", "2025-06-22T01:30")  # buffered on the UPS
    minute(env, "1", "--at", "2025-06-22T01:30")  # back: the backlog flushed, "on" held where 'silent' went
    pi_said = ["off"] if watchdog_has_the_channel else ["off", "on"]
    assert [request.body.get("state") for request in webhook.delivered() if "state" in request.body] == pi_said
    result = run_script("watchdog.py", "--at", "2025-06-22T01:31:30", env=watchdog_env)
    assert result.returncode == 0, result.stderr
    said += ["back"] if watchdog_has_the_channel else []
    minute(env, "1", "--at", "2025-06-22T01:32")  # the story was delivered there: the Pi's are settled
    assert [request.body.get("event") for request in webhook.delivered() if "event" in request.body] == said
    assert [request.body.get("state") for request in webhook.delivered() if "state" in request.body] == pi_said
    queue = PROJECT_DIR / server_env["BLACKOUT_BUFFER_DIR"] / "notify" / "queue"
    assert list(queue.glob("*.json")) == []
    status = run_script("dynamo.py", "status", "--device", DEVICE, env=env)
    assert "notifications: 0 waiting" in status.stdout, status.stdout
