"""infra/template.yaml: cfn-lint passes, and it says what dynamo.py says (tables, policies)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import dynamo

import policy
from tests.conftest import SCRIPT_TIMEOUT_SECONDS

TEMPLATE = Path(__file__).resolve().parent.parent / "infra" / "template.yaml"
CFN_LINT = Path(sys.executable).parent / "cfn-lint"
PARAMETERS = {"TablePrefix": "home", "DeviceName": "alex_rpi", "S3Prefix": "bm/data"}
BUCKET = "generated-bucket-name"


def cfn_lint():
    found = str(CFN_LINT) if CFN_LINT.exists() else shutil.which("cfn-lint")
    if not found:
        pytest.fail("cfn-lint is not installed: it belongs in requirements_dev.txt (cfn-lint==1.58.0)")
    return found


@pytest.fixture(scope="module")
def template():
    from cfnlint.decode import cfn_yaml  # cfn-lint's loader understands !Sub, !Ref, !GetAtt

    return cfn_yaml.load(str(TEMPLATE))


def resolve(node, template, parameters=PARAMETERS):
    """The template's intrinsic functions evaluated, with * for the region and the account."""
    if isinstance(node, list):
        return [resolve(item, template, parameters) for item in node]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Ref"}:
        return reference(node["Ref"], template, parameters)
    if set(node) == {"Fn::GetAtt"}:
        name, attribute = node["Fn::GetAtt"]
        return attribute_of(name, attribute, template, parameters)
    if set(node) == {"Fn::Sub"}:
        text = node["Fn::Sub"]
        import re

        def substitute(match):
            name = match.group(1)
            if "." in name:
                return attribute_of(*name.split(".", 1), template, parameters)
            return reference(name, template, parameters)

        return re.sub(r"\$\{([A-Za-z0-9_.:]+)\}", substitute, text)
    return {key: resolve(value, template, parameters) for key, value in node.items()}


def reference(name, template, parameters):
    pseudo = {"AWS::Region": "*", "AWS::AccountId": "*", "AWS::Partition": "aws"}
    if name in pseudo:
        return pseudo[name]
    if name in parameters:
        return parameters[name]
    resource = template["Resources"][name]
    if resource["Type"] == "AWS::S3::Bucket":
        return BUCKET
    return resolve(resource["Properties"].get("TableName"), template, parameters)


def attribute_of(name, attribute, template, parameters):
    assert attribute == "Arn", attribute
    resource = template["Resources"][name]
    if resource["Type"] == "AWS::DynamoDB::Table":
        return f"arn:aws:dynamodb:*:*:table/{reference(name, template, parameters)}"
    if resource["Type"] == "AWS::S3::Bucket":
        return f"arn:aws:s3:::{BUCKET}"
    raise AssertionError(f"no Arn for {name}")


def test_cfn_lint_passes():
    result = subprocess.run([cfn_lint(), str(TEMPLATE)], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_cfn_lint_catches_a_broken_template(tmp_path):
    """The lint really runs: a misspelt property fails it."""
    broken = tmp_path / "broken.yaml"
    broken.write_text(TEMPLATE.read_text().replace("BillingMode: PAY_PER_REQUEST", "BillingMod: PAY_PER_REQUEST", 1))
    result = subprocess.run([cfn_lint(), str(broken)], capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)
    assert result.returncode != 0 and "BillingMod" in result.stdout


def test_tables_match_dynamo_table_definition(template):
    tables = {name: resource for name, resource in template["Resources"].items()
              if resource["Type"] == "AWS::DynamoDB::Table"}
    by_name = {resolve(t["Properties"]["TableName"], template): t["Properties"] for t in tables.values()}
    assert set(by_name) == set(dynamo.table_names("home").values())
    for name, properties in by_name.items():
        expected = dynamo.table_definition(name)
        assert properties["BillingMode"] == expected["BillingMode"] == "PAY_PER_REQUEST"
        assert "ProvisionedThroughput" not in properties
        assert sorted(map(str, properties["AttributeDefinitions"])) == sorted(map(str, expected["AttributeDefinitions"]))
        assert properties["KeySchema"] == expected["KeySchema"]
        assert properties.get("GlobalSecondaryIndexes") == expected.get("GlobalSecondaryIndexes") is None
        assert "LocalSecondaryIndexes" not in properties


def test_ttl_on_minutes_only(template):
    resources = template["Resources"]
    assert resources["MinutesTable"]["Properties"]["TimeToLiveSpecification"] == {"AttributeName": "ttl", "Enabled": True}
    assert "TimeToLiveSpecification" not in resources["HoursTable"]["Properties"]
    assert "TimeToLiveSpecification" not in resources["DaysTable"]["Properties"]


def test_data_is_retained_when_the_stack_goes(template):
    for name in ("MinutesTable", "HoursTable", "DaysTable", "MirrorBucket"):
        assert template["Resources"][name]["DeletionPolicy"] == "Retain"
        assert template["Resources"][name]["UpdateReplacePolicy"] == "Retain"


def test_bucket_private_encrypted_versioned(template):
    bucket = template["Resources"]["MirrorBucket"]["Properties"]
    assert bucket["PublicAccessBlockConfiguration"] == {
        "BlockPublicAcls": True, "BlockPublicPolicy": True, "IgnorePublicAcls": True, "RestrictPublicBuckets": True}
    (rule,) = bucket["BucketEncryption"]["ServerSideEncryptionConfiguration"]
    assert rule["ServerSideEncryptionByDefault"]["SSEAlgorithm"] in ("AES256", "aws:kms")
    assert bucket["VersioningConfiguration"] == {"Status": "Enabled"}
    assert bucket["OwnershipControls"]["Rules"] == [{"ObjectOwnership": "BucketOwnerEnforced"}]
    assert "AccessControl" not in bucket
    policy = template["Resources"]["MirrorBucketPolicy"]["Properties"]["PolicyDocument"]
    (deny,) = policy["Statement"]
    assert deny["Effect"] == "Deny" and deny["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}


def test_device_policy_is_dynamo_policy_document(template):
    resource = template["Resources"]["DevicePolicy"]
    assert resource["Type"] == "AWS::IAM::ManagedPolicy" and resource["Condition"] == "HasDevice"
    rendered = resolve(resource["Properties"]["PolicyDocument"], template)
    expected = policy.policy_document({"table_prefix": "home"}, "alex_rpi", BUCKET, "bm/data")
    assert rendered == expected


def test_admin_policy_is_dynamo_admin_policy_document(template):
    rendered = resolve(template["Resources"]["AdminPolicy"]["Properties"]["PolicyDocument"], template)
    assert rendered == policy.admin_policy_document({"table_prefix": "home"})


def test_parameters_validate_like_the_config(template):
    import re

    import utils

    parameters = template["Parameters"]
    assert re.compile(parameters["TablePrefix"]["AllowedPattern"]).pattern.strip("^$") == \
        utils.TABLE_PREFIX_RE.pattern.strip("^$")
    device = re.compile(parameters["DeviceName"]["AllowedPattern"])
    for name in ("alex_rpi", "a-b", "x" * 64):
        assert device.match(name) and utils.DEVICE_RE.match(name)
    for name in ("a#b", "a*", "x" * 65, "a b"):
        assert not device.match(name) and not utils.DEVICE_RE.match(name)
    assert parameters["TablePrefix"]["Default"] == utils.KEYS["table_prefix"][1]
    assert parameters["S3Prefix"]["Default"] == utils.KEYS["s3_prefix"][1]


def test_the_schedule_reaches_every_function_that_tells_of_outages(template):
    import re

    pattern = re.compile(template["Parameters"]["ScheduleIcs"]["AllowedPattern"])
    for value in ("", "https://example.org/a.ics", "https://example.org/a.ics webcal://example.org/b.ics"):
        assert pattern.match(value), value
    for value in (" https://example.org/a.ics", "https://a.ics  https://b.ics", "https://a.ics\nhttps://b.ics"):
        assert not pattern.match(value), value
    for name in ("WatchdogFunction", "StatusPageFunction", "TelegramBotFunction"):
        variables = template["Resources"][name]["Properties"]["Environment"]["Variables"]
        assert variables["BLACKOUT_SCHEDULE_ICS"] == {"Fn::If": ["HasSchedule", {"Ref": "ScheduleIcs"},
                                                                 {"Ref": "AWS::NoValue"}]}, name


# --- the watchdog: package and deployment ----------------------------------------------------------

PROJECT = TEMPLATE.parent.parent


@pytest.fixture(scope="module")
def lambda_zip(tmp_path_factory):
    """`make lambda` into a copy of the package's sources (the worktree's build/ stays untouched)."""
    copy = tmp_path_factory.mktemp("src")
    for name in ("Makefile", "requirements.txt", *dynamo_watchdog_modules()):
        shutil.copy(PROJECT / name, copy / name)
    # this interpreter for the venv's (-o: the copy makes no venv of its own); pip fetches the wheels
    result = subprocess.run(["make", "-o", ".venv/.installed", "lambda", f"PY={sys.executable}"], cwd=copy,
                            capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r"^built build/watchdog-lambda\.zip: [0-9.]+ MiB$", result.stdout, re.M), result.stdout
    return copy / "build" / "watchdog-lambda.zip"


def pinned(package):
    """The version requirements.txt pins `package` to."""
    (line,) = [line for line in (PROJECT / "requirements.txt").read_text().splitlines()
               if line.startswith(f"{package}==")]
    return line.split("==", 1)[1].strip()


def dynamo_watchdog_modules():
    """The package's modules, as the Makefile lists them (one place for the list)."""
    for line in (PROJECT / "Makefile").read_text().splitlines():
        if line.startswith("LAMBDA_MODULES :="):
            return tuple(line.split(":=", 1)[1].split())
    raise AssertionError("no LAMBDA_MODULES in the Makefile")


def test_lambda_package_imports_on_its_own(lambda_zip, tmp_path):
    """Everything the handler imports is in the zip (boto3 is the runtime's)."""
    import zipfile

    zipfile.ZipFile(lambda_zip).extractall(tmp_path)
    code = ("import sys; sys.path.insert(0, '.'); import watchdog, messages, zoneinfo; "
            "assert watchdog.handler and messages.time_zone('Europe/Kyiv'); "
            "assert all(m.__file__.startswith('" + str(tmp_path) + "') for m in (watchdog, messages)); "
            "import channels; (apprise,) = channels.channels_from_config({'apprise_urls': ('json://h/x',)}); "
            "assert apprise.name.startswith('apprise json #'); "
            "import apprise as package; assert package.__file__.startswith('" + str(tmp_path) + "'); "
            "assert package.__version__ == '" + pinned("apprise") + "' and apprise.plugin() is not None; "
            "import status_page; assert status_page.handler; "
            "import schedule, utils, icalendar, recurring_ical_events; assert icalendar.__file__.startswith('" + str(tmp_path)
            + "') and schedule.parse_ics(b'BEGIN:VCALENDAR\\r\\nEND:VCALENDAR\\r\\n', "
            "utils.EARLIEST_TIME, utils.EARLIEST_TIME + schedule.MINUTE) == []; "
            "print(sorted(n for n in sys.modules if n in ('notify', 'pandas', 'pyarrow')))")
    result = subprocess.run([sys.executable, "-I", "-c", code], cwd=tmp_path, capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"  # nothing of the Pi's side or the aggregator


def test_watchdog_role_is_dynamo_watchdog_policy(template):
    role = template["Resources"]["WatchdogRole"]["Properties"]
    (role_policy,) = role["Policies"]
    # the SNS statement is there only with a topic (Fn::If)
    statements = {s["Sid"]: s for s in role_policy["PolicyDocument"]["Statement"] if "Fn::If" not in s}
    expected = {s["Sid"]: s for s in policy.watchdog_policy_document({"table_prefix": "home"})["Statement"]}
    for sid, statement in expected.items():
        assert resolve(statements[sid], template) == statement
    assert set(statements) - set(expected) == {"Secrets", "Logs", "DeadLetters"}
    assert statements["Secrets"]["Action"] == ["ssm:GetParameter"]
    for statement in statements.values():
        assert all("*" not in action for action in statement["Action"])


def test_watchdog_secrets_are_no_plain_text(template):
    function = template["Resources"]["WatchdogFunction"]["Properties"]
    variables = function["Environment"]["Variables"]
    assert not {"BLACKOUT_TELEGRAM_TOKEN", "BLACKOUT_WEBHOOK_URL", "BLACKOUT_TELEGRAM_CHAT_ID"} & set(variables)
    assert variables["BLACKOUT_SECRETS_PARAMETER"] == {"Ref": "SecretsParameterName"}
    assert function["Handler"] == "watchdog.handler" and "DeadLetterConfig" in function
    schedule = template["Resources"]["WatchdogSchedule"]["Properties"]
    assert schedule["ScheduleExpression"] == "rate(1 minute)"


def test_stack_deploys_into_moto_server(moto_server, aws_credentials, lambda_zip):
    """`aws cloudformation deploy` of the template, watchdog included, into moto's server.

    moto skips resource types it does not implement; the test names them, so a gap is visible.
    """
    import boto3
    from moto.cloudformation.parsing import resource_class_from_type

    from tests.conftest import FAKE_CREDENTIALS

    loaded = __import__("cfnlint.decode.cfn_yaml", fromlist=["load"]).load(str(TEMPLATE))
    unsupported = sorted({r["Type"] for r in loaded["Resources"].values() if not resource_class_from_type(r["Type"])})
    # moto 5.2.5 skips these (with a warning) and deploys the rest; a new gap fails here by name
    # (the status page's function URL: test_status_page_url_is_public_and_read_only checks it)
    assert unsupported == ["AWS::Lambda::Url", "AWS::S3::BucketPolicy"], f"moto's CloudFormation lacks {unsupported}"
    env = {**{k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "BLACKOUT_"))}, **FAKE_CREDENTIALS,
           "AWS_ENDPOINT_URL": moto_server}
    kwargs = {"endpoint_url": moto_server, "region_name": "us-east-1"}
    s3 = boto3.client("s3", **kwargs)
    s3.create_bucket(Bucket="bm-code")
    s3.upload_file(str(lambda_zip), "bm-code", "watchdog-lambda.zip")
    prefix = f"deploy{os.getpid()}"
    aws = Path(sys.executable).parent / "aws"
    result = subprocess.run(
        [str(aws), "cloudformation", "deploy", "--template-file", str(TEMPLATE), "--stack-name", prefix,
         "--capabilities", "CAPABILITY_NAMED_IAM", "--parameter-overrides", f"TablePrefix={prefix}",
         "DeviceName=alex_rpi", "WatchedDevices=alex_rpi bob", "WatchdogCodeBucket=bm-code",
         "WatchdogCodeKey=watchdog-lambda.zip", "TimeZone=Europe/Kyiv",
         "StatusPages=alex_rpi=AAAAAAAAAAAAAAAAAAAAAAAA bob=BBBBBBBBBBBBBBBBBBBBBBBB",
         "ScheduleIcs=https://example.org/group-3.1.ics webcal://example.org/eskom.ics"],
        env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    function = boto3.client("lambda", **kwargs).get_function_configuration(FunctionName=f"{prefix}-watchdog")
    assert function["Handler"] == "watchdog.handler"
    assert function["Environment"]["Variables"]["BLACKOUT_WATCH"] == "alex_rpi bob"
    schedule = "https://example.org/group-3.1.ics webcal://example.org/eskom.ics"
    assert function["Environment"]["Variables"]["BLACKOUT_SCHEDULE_ICS"] == schedule
    page = boto3.client("lambda", **kwargs).get_function_configuration(FunctionName=f"{prefix}-status-page")
    assert page["Environment"]["Variables"]["BLACKOUT_SCHEDULE_ICS"] == schedule
    assert page["Handler"] == "status_page.handler"
    assert page["Environment"]["Variables"]["BLACKOUT_STATUS_PAGES"].split() == [
        "alex_rpi=AAAAAAAAAAAAAAAAAAAAAAAA", "bob=BBBBBBBBBBBBBBBBBBBBBBBB"]
    deployed = {r["LogicalResourceId"]: r for r in boto3.client("cloudformation", **kwargs)
                .list_stack_resources(StackName=prefix)["StackResourceSummaries"]}
    assert {"WatchdogRole", "WatchdogDeadLetterQueue", "WatchdogLogGroup", "WatchdogSchedule",
            "WatchdogSchedulePermission", "DevicePolicy"} <= set(deployed)
    # (moto does not echo the function's DeadLetterConfig; test_watchdog_secrets_are_no_plain_text checks it)
    events = boto3.client("events", **kwargs)
    rule = events.describe_rule(Name=deployed["WatchdogSchedule"]["PhysicalResourceId"])
    assert rule["ScheduleExpression"] == "rate(1 minute)"
    (target,) = events.list_targets_by_rule(Rule=rule["Name"])["Targets"]
    assert target["Arn"] == function["FunctionArn"]
    tables = boto3.client("dynamodb", **kwargs).list_tables()["TableNames"]
    assert {f"{prefix}-minutes", f"{prefix}-hours", f"{prefix}-days"} <= set(tables)


def test_status_page_url_is_public_and_read_only(template):
    """A function URL without auth (the page id is the key); a role that can only Query."""
    resources = template["Resources"]
    assert resources["StatusPageUrl"]["Properties"]["AuthType"] == "NONE"
    permission = resources["StatusPageUrlPermission"]["Properties"]
    assert (permission["Action"], permission["FunctionUrlAuthType"]) == ("lambda:InvokeFunctionUrl", "NONE")
    assert resources["StatusPageFunction"]["Properties"]["Handler"] == "status_page.handler"
    (role_policy,) = resources["StatusPageRole"]["Properties"]["Policies"]
    statements = {s["Sid"]: s for s in role_policy["PolicyDocument"]["Statement"]}
    expected = {s["Sid"]: s for s in policy.status_page_policy_document({"table_prefix": "home"})["Statement"]}
    for sid, statement in expected.items():
        assert resolve(statements[sid], template) == statement
    assert set(statements) - set(expected) == {"Logs"}
    assert {action for s in expected.values() for action in s["Action"]} == {"dynamodb:Query"}
    import re

    import utils

    pattern = re.compile(template["Parameters"]["StatusPages"]["AllowedPattern"])
    assert pattern.fullmatch("") and pattern.fullmatch("alex_rpi=" + "A" * 24 + " bob=" + "b" * 16)
    assert not pattern.fullmatch("alex_rpi=short") and not pattern.fullmatch("a#b=" + "A" * 24)
    assert utils.KEYS["status_pages"][0]("k", "alex_rpi=" + "A" * 24 + " bob=" + "b" * 16)
