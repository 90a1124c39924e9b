"""Configuration: defaults < config.toml < BLACKOUT_* environment < flags, validated."""

import argparse

import pytest

import utils
from utils import ConfigError, load_config

KEYS = ("device", "table_prefix", "pin", "address", "buffer_dir", "retention_days", "s3_bucket")


def flags(**values):
    return argparse.Namespace(**values)


@pytest.fixture
def config_file(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('device = "from_file"\ntable_prefix = "file-prefix"\npin = 17\nretention_days = 90\n')
    return path


def test_flags_beat_environment_beat_file_beat_defaults(config_file):
    environ = {"BLACKOUT_CONFIG": str(config_file), "BLACKOUT_TABLE_PREFIX": "env-prefix", "BLACKOUT_PIN": "5"}
    config = load_config(flags(pin="6"), KEYS, environ)
    assert config["device"] == "from_file"  # file only
    assert config["table_prefix"] == "env-prefix"  # environment over file
    assert config["pin"] == 6  # flag over both
    assert config["retention_days"] == 90
    assert config["address"] == 0x76 and config["s3_bucket"] is None  # defaults
    assert config["buffer_dir"] == utils.PROJECT_DIR / "buffer"


def test_no_file_is_fine_and_a_named_missing_file_is_not(tmp_path):
    config = load_config(None, ("table_prefix",), {})
    assert config["table_prefix"] == "blackout-monitor"
    with pytest.raises(ConfigError, match="not found"):
        load_config(None, ("table_prefix",), {"BLACKOUT_CONFIG": str(tmp_path / "missing.toml")})


@pytest.mark.parametrize("text, message", [
    ('colour = "red"\n', "unknown key 'colour'"),
    ('device = "a#b"\n', "is not a valid device name"),
    ("pin = 28\n", "must be a whole number from 0 to 27, got 28"),
    ('pin = "four"\n', "got 'four'"),
    ("pin = true\n", "got True"),
    ("address = 0x78\n", "from 0x03 to 0x77, got 0x78"),
    ('device = ""\n', "must not be empty"),
    ("device = [1, 2]\n", "must be a string"),
    ("retention_days = 0\n", "from 1 to 36500"),
    ('s3_bucket = "Not_A_Bucket"\n', "not a valid S3 bucket name"),
    ('table_prefix = "a b"\n', "DynamoDB table names allow"),
    ("device = \n", "can't be read"),
])
def test_bad_config_file_values(tmp_path, text, message):
    path = tmp_path / "config.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=None) as raised:
        load_config(None, KEYS, {"BLACKOUT_CONFIG": str(path)})
    assert message in str(raised.value)


@pytest.mark.parametrize("name, value, message", [
    ("BLACKOUT_COLOUR", "red", "unknown environment variable BLACKOUT_COLOUR"),
    ("BLACKOUT_PIN", "", "BLACKOUT_PIN must not be empty"),
    ("BLACKOUT_ADDRESS", "0x77x", "got '0x77x'"),
    ("BLACKOUT_DEVICE", "alex#rpi", "is not a valid device name"),
    ("BLACKOUT_CONFIG", " ", "BLACKOUT_CONFIG is set but empty"),
])
def test_bad_environment_values(name, value, message):
    with pytest.raises(ConfigError) as raised:
        load_config(None, KEYS, {name: value})
    assert message in str(raised.value)


def test_addresses_accept_hex_and_decimal():
    assert load_config(flags(address="0x77"), ("address",), {})["address"] == 0x77
    assert load_config(flags(address="118"), ("address",), {})["address"] == 118


def test_error_messages_stay_one_short_line():
    huge = "x" * 100_000 + "\n#"
    with pytest.raises(ConfigError) as raised:
        load_config(flags(device=huge), ("device",), {})
    shown = utils.one_line(raised.value)
    assert "\n" not in shown and len(shown) <= utils.MESSAGE_LIMIT
