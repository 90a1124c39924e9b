"""A link down for longer than unreachable_alert_hours: the minute job says so once a day (exit 1,
one line, so cron mails it), and `dynamo.py status` shows since when."""

import datetime as dt
from pathlib import Path

import pytest

import status
import filebuffer
import link
import minute_job
import utils
from tests.conftest import free_port, run_script

UTC = dt.timezone.utc
T0 = dt.datetime(2025, 6, 21, 19, 0, tzinfo=UTC)
DEVICE = "alex_rpi"


@pytest.fixture
def down_since_t0(config):
    config["unreachable_alert_hours"] = 24
    filebuffer.Buffer(config["buffer_dir"]).write(filebuffer.Reading(DEVICE, "4", T0, {"reading": 0}))
    link.record_down(config["buffer_dir"], "https://dynamodb.eu-central-1.amazonaws.com", "Connection refused",
                     T0, environ={})
    return config


def said(config, hours_later):
    """The minute job's long-outage line at T0 + hours_later, or None."""
    try:
        minute_job.report_long_outage(config, now=T0 + dt.timedelta(hours=hours_later))
    except utils.JobFailed as error:
        return str(error)
    return None


def test_a_long_outage_is_said_once_a_day(down_since_t0):
    config = down_since_t0
    assert said(config, 23.9) is None
    assert said(config, 24) == (
        f"DynamoDB unreachable since 2025-06-21 19:00 UTC (1 d 0 h); 1 readings wait in {config['buffer_dir']}: "
        "check the network, the AWS region and credentials (said once a day)")
    assert said(config, 25) is None and said(config, 47.9) is None
    # the hourly full attempt rewrites the state: the outage is the same, so is the day's report
    link.record_down(config["buffer_dir"], "https://dynamodb.eu-central-1.amazonaws.com", "refused",
                     T0 + dt.timedelta(hours=30), environ={})
    assert said(config, 31) is None
    assert said(config, 48).startswith("DynamoDB unreachable since 2025-06-21 19:00 UTC (2 d 0 h)")


def test_the_span_is_configurable(down_since_t0):
    down_since_t0["unreachable_alert_hours"] = 2
    assert said(down_since_t0, 1.5) is None
    assert said(down_since_t0, 2).startswith("DynamoDB unreachable since 2025-06-21 19:00 UTC (2 h)")


def test_a_link_that_came_back_says_nothing(down_since_t0):
    link.record_up(down_since_t0["buffer_dir"])
    assert said(down_since_t0, 100) is None


@pytest.mark.parametrize("value", ["0", "9000", "a day"])
def test_a_bad_span_is_a_usage_error(value):
    with pytest.raises(utils.ConfigError, match="BLACKOUT_UNREACHABLE_ALERT_HOURS must be a whole number"):
        utils.load_config(None, minute_job.JOB_KEYS, {"BLACKOUT_UNREACHABLE_ALERT_HOURS": value})


def test_the_cron_minute_mails_it_once_then_stays_quiet(server_env):
    """The real script against a port nobody listens on, the link recorded down 25 hours ago."""
    env = dict(server_env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}", BLACKOUT_DEVICE=DEVICE)
    Path(env["BLACKOUT_CONFIG"]).write_text("pin = 4\n")
    since = utils.utc_now() - dt.timedelta(hours=25)
    Path(env["BLACKOUT_BUFFER_DIR"]).mkdir(parents=True)
    link.record_down(env["BLACKOUT_BUFFER_DIR"], env["AWS_ENDPOINT_URL"], "Connection refused", since, environ=env)
    first = run_script("read_pin.py", "--simulate", env=env)
    lines = first.stderr.splitlines()
    assert (first.returncode, first.stdout, len(lines)) == (1, "", 1), first.stderr
    assert lines[0].startswith(f"Error: DynamoDB unreachable since {since:%Y-%m-%d %H:%M} UTC (1 d 1 h); ")
    assert len(filebuffer.Buffer(env["BLACKOUT_BUFFER_DIR"]).pending()) == 1  # the reading is kept
    again = run_script("read_pin.py", "--simulate", env=env)
    assert (again.returncode, again.stdout, again.stderr) == (0, "", "")
    assert len(filebuffer.Buffer(env["BLACKOUT_BUFFER_DIR"]).pending()) == 2


def test_status_shows_since_when(dynamodb, down_since_t0):
    lines = list(status.status_lines(down_since_t0, dynamodb, now=T0 + dt.timedelta(hours=50)))
    assert lines[1] == ("link: DynamoDB unreachable since 2025-06-21 19:00 UTC (2 d 2 h), "
                        "last tried 2025-06-21 19:00 UTC: Connection refused")
