"""Every bad flag or configuration value: exit 2, one 'Error:' line on stderr, no traceback."""

import pytest

from tests.conftest import run_script

HUGE = "9" * 5000

CASES = [
    ("read_pin.py", ["--device", "alex_rpi"], {}, "no pin given"),
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
    ("read_pin.py", ["--pin", "4"], {"BLACKOUT_PINN": "4"}, "unknown environment variable BLACKOUT_PINN"),
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
