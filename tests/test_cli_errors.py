"""Every bad flag or configuration value: exit 2, one 'Error:' line on stderr, no traceback."""

import os
from pathlib import Path

import pytest

from tests.conftest import free_port, run_script

HUGE = "9" * 5000

CASES = [
    ("read_pin.py", ["--device", "alex_rpi"], {}, "no pin given: set pin (the relay's BCM pin number, 0-27) in "),
    ("read_pin.py", ["--device", "alex_rpi"], {}, "config.toml, where the cron job finds it, or pass --pin"),
    ("read_pin.py", ["--pin", "28"], {}, "--pin must be a whole number from 0 to 27, got 28"),
    ("read_pin.py", ["--pin", "-1"], {}, "from 0 to 27"),
    ("read_pin.py", ["--pin", "four"], {}, "got 'four'"),
    ("read_pin.py", ["--pin", HUGE], {}, "--pin must be a whole number"),
    ("read_pin.py", ["--pin", "4", "--device", "alex#rpi"], {}, "is not a valid device name"),
    ("read_pin.py", ["--pin", "4", "--device", ""], {}, "--device must not be empty"),
    ("read_pin.py", ["--pin", "4", "--value", "1"], {}, "--value needs --simulate"),
    ("read_pin.py", ["--pin", "4", "--simulate", "--value", "2"], {}, "invalid choice: '2'"),
    ("read_pin.py", ["--pin", "4", "--at", "2025-06-21T19:00"], {}, "--at needs --simulate"),
    ("read_pin.py", ["--pin", "4", "--simulate", "--at", "yesterday"], {}, "is not an ISO 8601 time"),
    ("read_pin.py", ["--pin", "4", "--simulate", "--until", "2025-06-21T19:00"], {}, "--until needs --at"),
    ("read_pin.py", ["--pin", "4", "--simulate", "--at", "2025-06-21T19:00", "--until", "2025-06-21T18:00"],
     {}, "must be after --at"),
    ("read_pin.py", ["--pin", "4", "--colour", "red"], {}, "unrecognized arguments: --colour red"),
    ("read_pin.py", ["--pin", "4"], {"BLACKOUT_TABLE_PREFIX": "a/b"}, "DynamoDB table names allow"),
    ("read_pin.py", ["--pin", "4"], {"BLACKOUT_RETENTION_DAYS": "forever"}, "BLACKOUT_RETENTION_DAYS must be"),
    ("read_pin.py", ["--pin", "4"], {"BLACKOUT_PINN": "4"},
     "unknown environment variable BLACKOUT_PINN; did you mean `BLACKOUT_PIN`?"),
    ("read_pin.py", ["--pin", "4"], {"BLACKOUT_WEBHOOK_URL": "ftp://x"}, "got 'ftp://x' (7 characters)"),
    ("read_pin.py", ["--pin", "4"], {"BLACKOUT_WEBHOOK_URL": "ftp://Example.org/hook?key=s3cret"},
     "got 'ftp://Example.org…' (33 characters)"),
    ("read_env.py", ["--address", "0x78"], {}, "--address must be a whole number from 0x03 to 0x77, got 0x78"),
    ("read_pin.py", ["--pin", "\u0664"], {}, "--pin must be a whole number from 0 to 27, got '\u0664'"),
    ("read_pin.py", ["--simulate", "--pin", "4", "--at", "0001-01-01T00:00+01:00"], {}, "is not an ISO 8601 time"),
    ("read_pin.py", ["--simulate", "--pin", "4", "--at", "2020-01-01T00:00"], {}, "--at 2020-01-01T00:00 is before 2024"),
    ("read_pin.py", ["--simulate", "--pin", "4", "--at", "2025-01-01T00:00", "--until", "9999-12-31T23:59-01:00"], {},
     "is not an ISO 8601 time"),
    ("read_env.py", ["--address", "seventy"], {}, "got 'seventy'"),
    ("read_env.py", ["--bus", "-1"], {}, "--bus must be a whole number"),
    ("read_env.py", ["--simulate", "--at", "2025-02-30T00:00"], {}, "is not an ISO 8601 time"),
    ("dynamo.py", ["flush", "--time-budget", "0"], {}, "--time-budget"),
    ("dynamo.py", ["status", "--device", "a b"], {}, "is not a valid device name"),
    ("dynamo.py", ["create-tables", "--table-prefix", "x" * 248], {}, "DynamoDB table names allow"),
    ("dynamo.py", ["policy", "--device", "alex_rpi", "--bucket", "UPPER"], {}, "not a valid S3 bucket name"),
    ("dynamo.py", ["drop-tables"], {}, "invalid choice: 'drop-tables'"),
    ("dynamo.py", ["create-tables"], {"AWS_PROFILE": "nosuch"}, "AWS profile 'nosuch' not found"),
    ("dynamo.py", ["create-tables"], {"AWS_DEFAULT_REGION": "bad region"}, "'bad region' is not a valid AWS region"),
    ("dynamo.py", ["create-tables"], {"AWS_ENDPOINT_URL": "not a url"}, "endpoint 'not a url' is not a URL"),
    ("dynamo.py", [], {}, "required"),
    ("dynamo.py", ["policy"], {}, "policy needs the device it is for: pass --device NAME"),
    ("mirror.py", [], {}, "mirror.py is not a command of its own: aggregate.py writes the mirror"),
    ("minute_job.py", [], {}, "minute_job.py is not a command of its own: run `python read_pin.py`"),
    ("aggregate.py", ["--device", "alex_rpi", "--sensor", "bme680"], {}, "is not a pin number"),
    ("aggregate.py", ["--device", "alex_rpi", "--parquet-dir", ""], {}, "must not be empty"),
]


@pytest.mark.parametrize("script, args, environ, message", CASES,
                         ids=[f"{c[0]}-{'-'.join(c[1])[:40]}-{'-'.join(c[2])}" for c in CASES])
def test_bad_input_exits_2_with_one_line(server_env, tmp_path, script, args, environ, message):
    result = run_script(script, *args, env={**server_env, **environ})
    lines = result.stderr.strip().splitlines()
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    assert len(lines) == 1 and lines[0].startswith("Error: ") and len(lines[0]) <= 400, lines
    errors = lines
    assert message in errors[0], errors[0]
    assert result.stdout == ""


def test_no_hardware_is_a_clear_error_not_a_simulation(server_env):
    result = run_script("read_pin.py", "--device", "alex_rpi", "--pin", "4", env=server_env)
    assert result.returncode == 2
    assert "use --simulate to try it without one" in result.stderr.strip().splitlines()[-1]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("text, script, args, message", [
    ('devcie = "alex_rpi"\n', "dynamo.py", ["status"], "unknown key 'devcie' in {path}; did you mean `device`?"),
    ('retention_dayz = 400\n', "dynamo.py", ["flush"], "unknown key 'retention_dayz' in {path}; "
                                                         "did you mean `retention_days`?"),
    ('colour = "red"\n', "dynamo.py", ["flush"], "unknown key 'colour' in {path}"),
    ("pin = 30\n", "read_pin.py", [], "pin in {path} must be a whole number from 0 to 27, got 30"),
    ("", "read_pin.py", [], "no pin given: set pin (the relay's BCM pin number, 0-27) in {path},"),
])
def test_config_file_mistakes_name_the_file_by_its_full_path(server_env, text, script, args, message):
    """One way of naming the file everywhere (its full path), and a near miss gets a suggestion."""
    path = server_env["BLACKOUT_CONFIG"]
    with open(path, "w") as handle:
        handle.write(text)
    result = run_script(script, *args, env=server_env)
    assert (result.returncode, result.stdout) == (2, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"Error: {message.format(path=path)}"), lines


@pytest.mark.parametrize("script, args", [
    ("read_pin.py", ["--device", "alex_rpi", "--pin", "4", "--simulate"]),
    ("read_env.py", ["--device", "alex_rpi", "--simulate"]),
    ("dynamo.py", ["create-tables"]),
    ("dynamo.py", ["status", "--device", "alex_rpi"]),
    ("aggregate.py", ["--device", "alex_rpi"]),
])
def test_an_unknown_region_is_a_usage_error_not_a_dead_link(server_env, script, args):
    """Without an endpoint of one's own, botocore would build dynamodb.eu-centrl-1.amazonaws.com
    and every minute would look like an outage; the region is checked against botocore's."""
    env = {name: value for name, value in server_env.items() if not name.startswith("AWS_ENDPOINT_URL")}
    env.update(AWS_REGION="eu-centrl-1", AWS_DEFAULT_REGION="eu-centrl-1")
    result = run_script(script, *args, env=env)
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr.splitlines() == [
        "Error: unknown AWS region 'eu-centrl-1': no AWS partition has it "
        "(AWS_REGION, AWS_DEFAULT_REGION or the profile's region)"]
    if script.startswith("read_"):  # the reading was buffered before the flush found out
        assert len(list(Path(env["BLACKOUT_BUFFER_DIR"]).glob("*.json"))) == 1


@pytest.mark.parametrize("service", ["dynamodb", "s3", "sns"])
def test_any_region_goes_with_an_endpoint_of_ones_own(aws_credentials, monkeypatch, service):
    """A local endpoint (moto, LocalStack) takes any region name; AWS's own endpoints don't."""
    import dynamo
    from utils import ConfigError

    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-centrl-1")
    with pytest.raises(ConfigError, match="unknown AWS region 'eu-centrl-1'"):
        dynamo.aws_client(service)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:4566")
    assert dynamo.aws_client(service).meta.region_name == "eu-centrl-1"
    monkeypatch.delenv("AWS_ENDPOINT_URL")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-central-1")
    assert dynamo.aws_client(service).meta.region_name == "eu-central-1"


def test_a_failed_job_says_error_once_in_the_one_form(server_env):
    """create-tables when DynamoDB can't be reached: exit 1 and one 'Error:' line, as usage errors."""
    env = dict(server_env, AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    result = run_script("dynamo.py", "create-tables", env=env)
    assert (result.returncode, result.stdout) == (1, "")
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("Error: DynamoDB unreachable: "), lines
    log = "".join(path.read_text() for path in Path(env["BLACKOUT_LOG_DIR"]).glob("*.log"))
    assert "dynamo[" in log and "ERROR DynamoDB unreachable" in log  # the daily log keeps it


def test_create_tables_says_when_it_enabled_ttl(server_env):
    first = run_script("dynamo.py", "create-tables", env=server_env)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout.startswith("created ") and "TTL" not in first.stdout
    env = dict(server_env, BLACKOUT_RETENTION_DAYS="400")
    minutes = f"{server_env['BLACKOUT_TABLE_PREFIX']}-minutes"
    second = run_script("dynamo.py", "create-tables", env=env)
    assert (second.returncode, second.stderr) == (0, "")
    assert second.stdout.splitlines()[1:] == [
        f"enabled TTL on {minutes}: minutes flushed with retention_days set expire 400 days after their "
        "minute; those stored before keep no ttl"]
    third = run_script("dynamo.py", "create-tables", env=env)
    assert third.stdout.startswith("tables exist: ") and len(third.stdout.splitlines()) == 1


@pytest.mark.parametrize("module, command", [
    ("mirror.py", "python aggregate.py --device NAME --export-from DATE"),
    ("minute_job.py", "python read_pin.py"),
])
def test_modules_run_as_scripts_say_what_to_run_instead(module, command):
    result = run_script(module, "--help", env={"PATH": os.environ["PATH"]})
    assert (result.returncode, result.stderr) == (0, "")
    help_text = " ".join(result.stdout.split())
    assert "This module is not a command of its own" in help_text and command in help_text
