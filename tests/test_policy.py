"""`python dynamo.py policy`: the least-privilege IAM policies of a device and of an admin."""

import json
import re

import pytest

import dynamo

import policy
from tests.conftest import run_script
from tests.strict_dynamodb import iam_match

DEVICE_ACTIONS = {"dynamodb:BatchWriteItem", "dynamodb:DeleteItem", "dynamodb:PutItem", "dynamodb:Query",
                  "dynamodb:UpdateItem"}
ARN_RE = re.compile(r"^arn:aws:dynamodb:\*:\*:table/(?P<table>[A-Za-z0-9_.-]+)(?P<index>/index/status-index)?$")


@pytest.fixture
def env(tmp_path):
    import os

    environment = {k: v for k, v in os.environ.items() if not k.startswith(("BLACKOUT_", "AWS_"))}
    environment["BLACKOUT_CONFIG"] = str(tmp_path / "config.toml")
    (tmp_path / "config.toml").write_text('table_prefix = "home"\n')
    return environment


def policy_cli(env, *args):
    result = run_script("dynamo.py", "policy", *args, env=env)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    return json.loads(result.stdout)


def statements(document):
    assert document["Version"] == "2012-10-17"
    return {statement["Sid"]: statement for statement in document["Statement"]}


def test_device_policy_structure(env):
    document = policy_cli(env, "--device", "alex_rpi")
    found = statements(document)
    assert set(found) == {"OwnItemsOnly", "ReadWatchdogState", "DescribeOwnTables"}  # no bucket: no S3
    items = found["OwnItemsOnly"]
    assert set(items["Action"]) == DEVICE_ACTIONS
    assert items["Condition"] == {
        "ForAllValues:StringLike": {"dynamodb:LeadingKeys": ["device#alex_rpi#*"]},
        "Null": {"dynamodb:LeadingKeys": "false"},
    }
    assert {ARN_RE.match(arn).group("table") for arn in items["Resource"]} == {"home-minutes", "home-hours", "home-days"}
    assert sum(1 for arn in items["Resource"] if arn.endswith("/index/status-index")) == 3
    describe = found["DescribeOwnTables"]
    assert describe["Action"] == ["dynamodb:DescribeTable"]
    assert sorted(describe["Resource"]) == sorted(f"arn:aws:dynamodb:*:*:table/home-{k}" for k in ("minutes", "hours", "days"))


def test_no_wildcard_actions_no_scan_no_delete_but_the_devices_own_markers(env):
    for args in (["--device", "alex_rpi", "--bucket", "my-bucket"], ["--admin"]):
        document = policy_cli(env, *args)
        for statement in document["Statement"]:
            assert statement["Effect"] == "Allow"
            for action in statement["Action"]:
                assert "*" not in action and "?" not in action
                name = action.split(":", 1)[1]
                assert name not in ("Scan", "DeleteTable", "PartiQLSelect", "ExecuteStatement")
                assert not name.startswith(("BatchGet", "Get", "List", "Export", "Restore"))
                # DeleteItem only (markers of new hours), and only under LeadingKeys device#NAME#*
                assert not name.startswith("Delete") or (
                    name == "DeleteItem" and statement["Condition"]["ForAllValues:StringLike"]
                    ["dynamodb:LeadingKeys"] == ["device#alex_rpi#*"])
            for arn in statement["Resource"]:
                if arn.startswith("arn:aws:dynamodb"):
                    # the region and the account are the only wildcards
                    assert ARN_RE.match(arn), arn
                else:
                    assert arn.count("*") == 1 and arn.endswith("/*"), arn


def test_leading_keys_cover_the_devices_keys_only():
    config = {"table_prefix": "home"}
    condition = statements(policy.policy_document(config, "alex_rpi"))["OwnItemsOnly"]["Condition"]
    (pattern,) = condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    ts = __import__("datetime").datetime(2025, 6, 21, 19, 0, tzinfo=__import__("datetime").timezone.utc)
    own = [
        dynamo.minute_key("alex_rpi", "4", ts)[0], dynamo.hour_key("alex_rpi", "bme280", ts)[0],
        dynamo.day_key("alex_rpi", "4", ts)[0], dynamo.registry_key("alex_rpi", "4")[0],
        dynamo.status_key("alex_rpi", "4"), dynamo.status_key("alex_rpi", "bme280"),
    ]
    assert all(iam_match(pattern, key) for key in own)
    others = [
        dynamo.minute_key("alex_rpi2", "4", ts)[0], dynamo.registry_key("alex", "4")[0],
        dynamo.status_key("ALEX_RPI", "4"), dynamo.minute_key("bob", "4", ts)[0], "device#alex_rpi", "x",
    ]
    assert not any(iam_match(pattern, key) for key in others)


def test_s3_only_under_the_devices_own_folders(env):
    found = statements(policy_cli(env, "--device", "alex_rpi", "--bucket", "my-bucket", "--prefix", "bm/data"))
    mirror = found["OwnParquetMirror"]
    assert mirror["Action"] == ["s3:PutObject"]
    assert mirror["Resource"] == [f"arn:aws:s3:::my-bucket/bm/data/{kind}/device=alex_rpi/*"
                                  for kind in ("minutes", "hours", "days")]
    allowed = ["bm/data/minutes/device=alex_rpi/sensor=4/date=2025-06-21/data.parquet",
               "bm/data/days/device=alex_rpi/sensor=bme280/month=2025-06/data.parquet"]
    denied = ["bm/data/minutes/device=alex_rpi2/sensor=4/date=2025-06-21/data.parquet",
              "bm/data/minutes/device=bob/sensor=4/device=alex_rpi/data.parquet",  # inside another's folder
              "bm/data/device=alex_rpi/x", "other/minutes/device=alex_rpi/x", "bm/data/minutes/device=alex_rpi"]
    arn = "arn:aws:s3:::my-bucket/"
    assert all(any(iam_match(p, arn + key) for p in mirror["Resource"]) for key in allowed)
    assert not any(iam_match(p, arn + key) for p in mirror["Resource"] for key in denied)


def test_bucket_from_config(env, tmp_path):
    (tmp_path / "config.toml").write_text('table_prefix = "home"\ns3_bucket = "cfg-bucket"\n')
    found = statements(policy_cli(env, "--device", "alex_rpi"))
    assert all(arn.startswith("arn:aws:s3:::cfg-bucket/blackout-monitor/") for arn in found["OwnParquetMirror"]["Resource"])


def test_admin_policy(env):
    found = statements(policy_cli(env, "--admin"))
    assert set(found) == {"CreateTables"}
    statement = found["CreateTables"]
    assert set(statement["Action"]) == {"dynamodb:CreateTable", "dynamodb:DescribeTable",
                                        "dynamodb:DescribeTimeToLive", "dynamodb:UpdateTimeToLive"}
    assert all(ARN_RE.match(arn) and "home-" in arn for arn in statement["Resource"])
    assert "Condition" not in statement


@pytest.mark.parametrize("device", ["a#b", "*", "alex*", "a?c", "", " ", "x" * 65, "a/b", "al ex", "dévice", "a\nb"])
def test_device_name_is_validated(env, device):
    result = run_script("dynamo.py", "policy", "--device", device, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    lines = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in result.stderr
    assert "device" in lines[0]


def test_device_name_is_validated_in_the_function():
    with pytest.raises(Exception, match="not a valid device name"):
        policy.policy_document({"table_prefix": "home"}, "alex*")


def test_policy_never_prints_credentials(env):
    env = dict(env, AWS_ACCESS_KEY_ID="AKIASECRETSECRET", AWS_SECRET_ACCESS_KEY="verysecretkey")
    result = run_script("dynamo.py", "policy", "--device", "alex_rpi", env=env)
    assert result.returncode == 0
    assert "SECRET" not in result.stdout + result.stderr and "verysecret" not in result.stdout + result.stderr


def test_sns_publish_only_on_the_configured_topic(env):
    topic = "arn:aws:sns:eu-central-1:123456789012:blackout.fifo"
    assert "PublishPowerChanges" not in statements(policy_cli(env, "--device", "alex_rpi"))
    found = statements(policy_cli(env, "--device", "alex_rpi", "--sns-topic-arn", topic))
    assert found["PublishPowerChanges"] == {"Sid": "PublishPowerChanges", "Effect": "Allow",
                                            "Action": ["sns:Publish"], "Resource": [topic]}


def test_a_device_reads_its_watchdog_state_and_writes_no_watchdog_state():
    """The watchdog's state items are outside every device's device#NAME#* keys: a Pi can only
    Query its own (to keep quiet about what the watchdog told), never write it or another's."""
    found = statements(policy.policy_document({"table_prefix": "home"}, "alex_rpi"))
    own, _ = dynamo.watchdog_key("alex_rpi")
    (writable,) = found["OwnItemsOnly"]["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    for device in ("alex_rpi", "bob", "alex_rpi2"):
        assert not iam_match(writable, dynamo.watchdog_key(device)[0])
    read = found["ReadWatchdogState"]
    assert read["Action"] == ["dynamodb:Query"]
    assert read["Resource"] == ["arn:aws:dynamodb:*:*:table/home-minutes"]
    assert read["Condition"]["ForAllValues:StringLike"] == {"dynamodb:LeadingKeys": [own]}  # no wildcard in it
    assert read["Condition"]["Null"] == {"dynamodb:LeadingKeys": "false"}


def test_watchdog_policy(env):
    found = statements(policy_cli(env, "--watchdog"))
    assert set(found) == {"ReadReadings", "OwnState"}
    readings, state = found["ReadReadings"], found["OwnState"]
    assert readings["Action"] == ["dynamodb:Query"] and set(state["Action"]) == {"dynamodb:BatchGetItem", "dynamodb:Query", "dynamodb:PutItem"}
    assert readings["Resource"] == state["Resource"] == ["arn:aws:dynamodb:*:*:table/home-minutes"]
    (read_pattern,) = readings["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    (state_pattern,) = state["Condition"]["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
    ts = __import__("datetime").datetime(2025, 6, 21, 19, 0, tzinfo=__import__("datetime").timezone.utc)
    assert iam_match(read_pattern, dynamo.minute_key("bob", "4", ts)[0])
    assert iam_match(read_pattern, dynamo.registry_key("bob", "4")[0])
    assert iam_match(state_pattern, dynamo.watchdog_key("bob")[0])
    assert not iam_match(state_pattern, dynamo.minute_key("bob", "4", ts)[0])  # never writes readings
    topic = "arn:aws:sns:eu-central-1:123456789012:watch"
    assert statements(policy_cli(env, "--watchdog", "--sns-topic-arn", topic))["PublishAnnouncements"]["Resource"] == [topic]
