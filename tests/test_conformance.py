"""The project's requests pass a strict DynamoDB (tests/strict_dynamodb.py), and the checker
itself rejects what the real DynamoDB rejects but moto lets through.

Every client that dynamo.aws_client makes in these tests is checked before each request
leaves; the paths run are create-tables (with TTL, twice), flush (several batches, a
duplicate minute, both sensor kinds, TTL), status and the hourly aggregation. The recorded
calls are then checked against the device's and the administrator's IAM policies.
"""

import datetime as dt
import importlib.util

import pytest

import dynamo


import status
import policy
import filebuffer
import utils
from tests import strict_dynamodb as strict
from tests.strict_dynamodb import StrictChecker, StrictViolation, check, iam_match, project_schemas

UTC = dt.timezone.utc
START = dt.datetime(2025, 6, 21, 18, 0, tzinfo=UTC)
HAVE_AGGREGATE = importlib.util.find_spec("aggregate") is not None


@pytest.fixture
def checker(monkeypatch, config):
    """Every DynamoDB client made through dynamo.aws_client is checked."""
    checker = StrictChecker()
    original = dynamo.aws_client

    def strict_client(service="dynamodb", **kwargs):
        client = original(service, **kwargs)
        return checker.attach(client) if service == "dynamodb" else client

    monkeypatch.setattr(dynamo, "aws_client", strict_client)
    return checker


@pytest.fixture
def strict_tables(mocked_aws, config, checker):
    """The project's tables, created through the checker (so it knows their schemas)."""
    config["retention_days"] = 400
    dynamo.create_tables(config)
    return checker


def buffer_readings(config, count=60, start=START):
    store = filebuffer.Buffer(config["buffer_dir"])
    readings = []
    for minute in range(count):
        ts = start + dt.timedelta(minutes=minute, seconds=3, microseconds=241969)
        readings.append(filebuffer.Reading(config["device"], "4", ts, {"reading": minute % 2}))
        readings.append(filebuffer.Reading(config["device"], "bme280", ts, {
            "temperature_c": 21.37, "humidity_pct": 55.2, "pressure_hpa": 1013.25 + minute / 100}))
    # a second reading of one minute: the flush collapses it (a batch can't name a key twice)
    readings.append(filebuffer.Reading(config["device"], "4", start + dt.timedelta(seconds=59), {"reading": 1}))
    for reading in readings:
        store.write(reading)
    return readings


# --- the project's own paths ---------------------------------------------------------------------

def test_create_tables_is_strictly_valid_and_idempotent(strict_tables, config):
    dynamo.create_tables(config)  # second run: ResourceInUse, describe, TTL already on
    assert strict_tables.violations == []
    assert {"CreateTable", "DescribeTable", "DescribeTimeToLive", "UpdateTimeToLive"} <= strict_tables.operations()
    created = [params for operation, params in strict_tables.calls if operation == "CreateTable"]
    assert len(created) == 6 and all(p == dynamo.table_definition(p["TableName"]) for p in created)


def test_flush_is_strictly_valid(strict_tables, config):
    buffer_readings(config, count=60)
    result = dynamo.flush(config)
    assert strict_tables.violations == []
    assert result.left == 0 and result.sent == 121
    batches = [params for operation, params in strict_tables.calls if operation == "BatchWriteItem"]
    assert len(batches) >= 5
    for params in batches:
        (requests,) = params["RequestItems"].values()
        assert 1 <= len(requests) <= dynamo.BATCH_LIMIT
        item = requests[0]["PutRequest"]["Item"]
        if "#date#" in item["pk"]["S"]:  # a minute item (markers of new hours have no ttl)
            assert item["ttl"]["N"].isdigit()
    assert any("#status#new" in params["RequestItems"][dynamo.table_names(config["table_prefix"])["minutes"]][0]
               ["PutRequest"]["Item"]["pk"]["S"] for params in batches)


def test_status_is_strictly_valid(strict_tables, config):
    buffer_readings(config, count=5)
    dynamo.flush(config)
    lines = list(status.status_lines(config, now=START + dt.timedelta(hours=1)))
    assert strict_tables.violations == []
    assert "Query" in strict_tables.operations()
    assert any("sensor 4" in line for line in lines), lines
    assert not any(p.get("IndexName") for o, p in strict_tables.calls if o == "Query")  # markers: no index


@pytest.mark.skipif(not HAVE_AGGREGATE, reason="aggregate.py not written yet (issue 3)")
def test_aggregate_is_strictly_valid(strict_tables, config, monkeypatch):
    buffer_readings(config, count=130)
    dynamo.flush(config)
    run_aggregate(config, monkeypatch)
    assert strict_tables.violations == []
    operations = strict_tables.operations()
    assert "Query" in operations and ({"PutItem", "BatchWriteItem"} & operations)
    # a second run finds nothing new and must still be valid
    run_aggregate(config, monkeypatch)
    assert strict_tables.violations == []


def run_aggregate(config, monkeypatch):
    """The hourly job in-process, so its clients go through the checker."""
    import aggregate

    # whatever name aggregate.py imported the client factory under, route it to the checker
    if getattr(aggregate, "aws_client", None) is not None:
        monkeypatch.setattr(aggregate, "aws_client", dynamo.aws_client)
    code = aggregate.main([
        "--device", config["device"], "--table-prefix", config["table_prefix"],
        "--buffer-dir", str(config["buffer_dir"]), "--log-dir", str(config["log_dir"]),
    ])
    assert code == 0


# --- the IAM policies cover exactly what the project does ---------------------------------------

def allowed(document, operation, params, schemas):
    """Whether an Allow statement of `document` covers this call, LeadingKeys included."""
    table = params.get("TableName") or next(iter(params.get("RequestItems", {})), None)
    resource = f"arn:aws:dynamodb:us-east-1:123456789012:table/{table}"
    if params.get("IndexName"):
        resource += f"/index/{params['IndexName']}"
    keys = strict.leading_keys(operation, params, schemas)
    for statement in document["Statement"]:
        if f"dynamodb:{operation}" not in statement["Action"]:
            continue
        if not any(iam_match(pattern, resource) for pattern in statement["Resource"]):
            continue
        condition = statement.get("Condition", {})
        if condition:
            patterns = condition["ForAllValues:StringLike"]["dynamodb:LeadingKeys"]
            if not keys or not all(any(iam_match(p, key) for p in patterns) for key in keys):
                continue
        return True
    return False


@pytest.mark.skipif(not HAVE_AGGREGATE, reason="aggregate.py not written yet (issue 3)")
def test_device_policy_allows_every_call_of_flush_status_and_aggregate(strict_tables, config, monkeypatch):
    self_calls = len(strict_tables.calls)
    buffer_readings(config, count=130)
    dynamo.flush(config)
    list(status.status_lines(config, now=START + dt.timedelta(hours=3)))
    run_aggregate(config, monkeypatch)
    device_calls = strict_tables.calls[self_calls:]
    document = policy.policy_document(config, config["device"])
    denied = [(o, p) for o, p in device_calls if not allowed(document, o, p, strict_tables.schemas)]
    assert denied == []
    other = policy.policy_document(config, "alex_rpi2")
    assert all(not allowed(other, o, p, strict_tables.schemas)
               for o, p in device_calls if o != "DescribeTable")


def test_device_policy_allows_every_call_of_flush_and_status(strict_tables, config):
    first = len(strict_tables.calls)
    buffer_readings(config, count=30)
    dynamo.flush(config)
    list(status.status_lines(config, now=START + dt.timedelta(hours=1)))
    calls = strict_tables.calls[first:]
    document = policy.policy_document(config, config["device"])
    assert [(o, p) for o, p in calls if not allowed(document, o, p, strict_tables.schemas)] == []
    # the same calls by another device's policy: every data call is denied
    for name in ("alex", "alex_rpi2", "ALEX_RPI"):
        other = policy.policy_document(config, name)
        assert not any(allowed(other, o, p, strict_tables.schemas) for o, p in calls if o != "DescribeTable")


def test_admin_policy_allows_create_tables(strict_tables, config):
    document = policy.admin_policy_document(config)
    calls = [(o, p) for o, p in strict_tables.calls]
    assert calls and all(allowed(document, o, p, strict_tables.schemas) for o, p in calls)
    device = policy.policy_document(config, config["device"])
    assert not any(allowed(device, o, p, strict_tables.schemas) for o, p in calls if o != "DescribeTable")


# --- names and sizes the configuration allows ----------------------------------------------------

@pytest.mark.parametrize("prefix", ["a", "a.b_c-D9", "x" * 247])
def test_every_valid_prefix_gives_valid_table_names(prefix):
    assert utils.load_config(None, ("table_prefix",), {"BLACKOUT_TABLE_PREFIX": prefix})["table_prefix"] == prefix
    definitions = [dynamo.table_definition(name) for name in dynamo.table_names(prefix).values()]
    assert all(check("CreateTable", d, {}) == [] for d in definitions)


@pytest.mark.parametrize("prefix", ["x" * 248, "a#b", "a b", "a/b", "tab\u00e9", "a:b"])
def test_prefixes_that_would_make_invalid_names_are_refused(prefix):
    names = dynamo.table_names(prefix).values()
    assert any(strict.name_problems(name, "table", "t") for name in names)
    with pytest.raises(utils.ConfigError):
        utils.load_config(None, ("table_prefix",), {"BLACKOUT_TABLE_PREFIX": prefix})


def test_longest_device_and_sensor_keep_keys_within_limits():
    device = "d" * 64
    ts = dt.datetime(2025, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)
    schemas = project_schemas("p" * 247)
    reading = filebuffer.Reading(device, "bme280", ts, {
        "temperature_c": -40.0, "humidity_pct": 100.0, "pressure_hpa": 1099.99})
    item = dynamo.minute_item(reading, retention_days=36500)
    table = dynamo.table_names("p" * 247)["minutes"]
    assert check("PutItem", {"TableName": table, "Item": item}, schemas) == []
    assert len(item["pk"]["S"]) < strict.MAX_PARTITION_KEY_BYTES
    assert len(dynamo.registry_key(device, "bme280")[0]) < strict.MAX_PARTITION_KEY_BYTES


@pytest.mark.parametrize("value", [0, 1, -40.0, 1e-05, 123456.789, 1099.99, 0.1 + 0.2, 2 ** 63, 1e125])
def test_numbers_the_project_writes_are_valid(value):
    assert strict.value_problems(dynamo.number(value), "n") == []


# --- the checker rejects what DynamoDB rejects ----------------------------------------------------

TABLE = "test-bm-minutes"


def put(pk="device#a#sensor#4#date#2025-06-21-18", sk="time#00", **extra):
    item = {"pk": {"S": pk}, "sk": {"S": sk}, "ts": {"S": "2025-06-21T18:00:03.241969+00:00"},
            "pk_status": {"S": "device#a#sensor#4#status#new"}, "reading": {"N": "1"}}
    item.update(extra)
    return {"PutRequest": {"Item": item}}


@pytest.fixture
def schemas():
    return project_schemas("test-bm")


@pytest.fixture
def legacy_schemas():
    """Tables of an earlier version, with status-index: the checker still knows indexes."""
    return strict.legacy_project_schemas("test-bm")


def problems_of(operation, params, schemas):
    found = check(operation, params, schemas)
    assert found, f"{operation} {params} should be rejected"
    return " | ".join(found)


def test_rejects_a_26_item_batch(schemas):
    requests = [put(sk=f"time#{i:02d}") for i in range(26)]
    assert "more than 25" in problems_of("BatchWriteItem", {"RequestItems": {TABLE: requests}}, schemas)
    assert check("BatchWriteItem", {"RequestItems": {TABLE: requests[:25]}}, schemas) == []


def test_rejects_duplicate_keys_in_a_batch(schemas):
    requests = [put(sk="time#07"), put(sk="time#07", reading={"N": "0"})]
    assert "duplicates" in problems_of("BatchWriteItem", {"RequestItems": {TABLE: requests}}, schemas)


def test_rejects_an_empty_batch(schemas):
    problems_of("BatchWriteItem", {"RequestItems": {}}, schemas)
    problems_of("BatchWriteItem", {"RequestItems": {TABLE: []}}, schemas)


def test_rejects_malformed_write_requests(schemas):
    both = {"PutRequest": put()["PutRequest"], "DeleteRequest": {"Key": {"pk": {"S": "x"}, "sk": {"S": "y"}}}}
    problems_of("BatchWriteItem", {"RequestItems": {TABLE: [both]}}, schemas)
    no_sk = put()
    del no_sk["PutRequest"]["Item"]["sk"]
    assert "lacks" in problems_of("BatchWriteItem", {"RequestItems": {TABLE: [no_sk]}}, schemas)
    extra_key = {"DeleteRequest": {"Key": {"pk": {"S": "x"}, "sk": {"S": "y"}, "ts": {"S": "z"}}}}
    problems_of("BatchWriteItem", {"RequestItems": {TABLE: [extra_key]}}, schemas)


@pytest.mark.parametrize("name", ["ab", "x" * 256, "a#b-minutes", "bad name", "", "tab\u00e9le"])
def test_rejects_invalid_table_names(name, schemas):
    assert "table name" in problems_of("DescribeTable", {"TableName": name}, schemas)
    definition = dynamo.table_definition(name)
    assert "table name" in problems_of("CreateTable", definition, {})


def test_rejects_an_invalid_index_name():
    definition = dynamo.legacy_table_definition("t-minutes")
    definition["GlobalSecondaryIndexes"][0]["IndexName"] = "st"
    assert "index name" in problems_of("CreateTable", definition, {})


def test_rejects_create_table_with_unused_attribute_definitions():
    definition = dynamo.legacy_table_definition("t-minutes")
    definition["AttributeDefinitions"].append({"AttributeName": "reading", "AttributeType": "N"})
    assert "AttributeDefinitions" in problems_of("CreateTable", definition, {})
    del definition["GlobalSecondaryIndexes"]
    del definition["AttributeDefinitions"][-1]
    problems_of("CreateTable", definition, {})  # pk_status and ts defined but no index uses them


@pytest.mark.parametrize("word", ["ttl", "count", "status", "timestamp", "data", "name", "value", "size", "Date"])
def test_rejects_unescaped_reserved_words(word, schemas):
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    params = {"TableName": TABLE, "Key": key, "UpdateExpression": f"SET {word} = :v",
              "ExpressionAttributeValues": {":v": {"N": "1"}}}
    assert f"reserved keyword: {word}" in problems_of("UpdateItem", params, schemas)
    params = {"TableName": TABLE, "Key": key, "UpdateExpression": "SET #w = :v",
              "ExpressionAttributeNames": {"#w": word}, "ExpressionAttributeValues": {":v": {"N": "1"}}}
    assert check("UpdateItem", params, schemas) == []
    query = {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "FilterExpression": f"{word} > :v",
             "ExpressionAttributeValues": {":p": {"S": "p"}, ":v": {"N": "1"}}}
    assert "reserved keyword" in problems_of("Query", query, schemas)
    projection = {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "ProjectionExpression": f"sk, {word}",
                  "ExpressionAttributeValues": {":p": {"S": "p"}}}
    assert "reserved keyword" in problems_of("Query", projection, schemas)


def test_reserved_word_list_is_the_published_one():
    assert len(strict.RESERVED_WORDS) == 573
    assert {"TTL", "COUNT", "STATUS", "TIMESTAMP", "DATA", "NAME", "VALUE", "READING"} - strict.RESERVED_WORDS == {"READING"}
    # The item attributes of SPEC.md that an expression must name through a placeholder:
    attributes = ("pk", "sk", "ts", "pk_status", "reading", "temperature_c", "humidity_pct", "pressure_hpa",
                  "ttl", "count", "expected", "unknown", "on", "off", "uptime", "outages",
                  "longest_outage_minutes", "device", "sensor")
    assert {a for a in attributes if a.upper() in strict.RESERVED_WORDS} == {"ttl", "count", "unknown", "on"}


def test_rejects_unused_and_undefined_placeholders(schemas):
    base = {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "ExpressionAttributeValues": {":p": {"S": "p"}}}
    assert "unused" in problems_of("Query", {**base, "ExpressionAttributeNames": {"#n": "name"}}, schemas)
    assert "unused" in problems_of(
        "Query", {**base, "ExpressionAttributeValues": {":p": {"S": "p"}, ":x": {"N": "1"}}}, schemas)
    assert "not defined" in problems_of("Query", {**base, "KeyConditionExpression": "pk = :q"}, schemas)
    assert "not defined" in problems_of("Query", {**base, "KeyConditionExpression": "#k = :p"}, schemas)
    assert "must not be empty" in problems_of("Query", {**base, "ExpressionAttributeNames": {}}, schemas)


def test_rejects_consistent_read_on_a_global_index(legacy_schemas):
    schemas = legacy_schemas
    params = {"TableName": TABLE, "IndexName": "status-index", "KeyConditionExpression": "pk_status = :s",
              "ExpressionAttributeValues": {":s": {"S": "device#a#sensor#4#status#new"}}}
    assert check("Query", params, schemas) == []
    assert "Consistent reads" in problems_of("Query", {**params, "ConsistentRead": True}, schemas)
    assert check("Query", {**params, "IndexName": None, "KeyConditionExpression": "pk = :s",
                           "ConsistentRead": True}, schemas) == []


def test_rejects_what_a_keys_only_index_cannot_give(legacy_schemas):
    schemas = legacy_schemas
    params = {"TableName": TABLE, "IndexName": "status-index", "KeyConditionExpression": "pk_status = :s",
              "ExpressionAttributeValues": {":s": {"S": "x"}}}
    assert "ALL_ATTRIBUTES" in problems_of("Query", {**params, "Select": "ALL_ATTRIBUTES"}, schemas)
    assert "not projected" in problems_of("Query", {**params, "ProjectionExpression": "pk, sk, reading"}, schemas)
    assert check("Query", {**params, "ProjectionExpression": "pk, sk, ts"}, schemas) == []


@pytest.mark.parametrize("limit", [0, -1])
def test_rejects_a_limit_below_one(limit, schemas):
    params = {"TableName": TABLE, "KeyConditionExpression": "pk = :p",
              "ExpressionAttributeValues": {":p": {"S": "p"}}, "Limit": limit}
    assert "Limit" in problems_of("Query", params, schemas)


@pytest.mark.parametrize("condition,fragment", [
    ("sk = :p", "equality on pk"),
    ("pk > :p", "equality on pk"),
    ("pk = :p AND reading = :p", "not a key"),
    ("pk = :p AND sk > :p AND sk < :p", "more than one condition"),
    ("pk = :p OR sk = :p", "unexpected"),
    ("pk = :p AND contains(sk, :p)", "invalid operator"),
])
def test_rejects_invalid_key_conditions(condition, fragment, schemas):
    params = {"TableName": TABLE, "KeyConditionExpression": condition,
              "ExpressionAttributeValues": {":p": {"S": "p"}}}
    assert fragment in problems_of("Query", params, schemas)


def test_accepts_valid_key_conditions(schemas):
    for condition in ("pk = :p", "(pk = :p)", "pk = :p AND begins_with(sk, :p)",
                      "pk = :p AND sk BETWEEN :p AND :q", "pk = :p and sk >= :p"):
        values = {":p": {"S": "p"}} | ({":q": {"S": "q"}} if ":q" in condition else {})
        params = {"TableName": TABLE, "KeyConditionExpression": condition, "ExpressionAttributeValues": values}
        assert check("Query", params, schemas) == [], condition


def test_rejects_a_filter_on_key_attributes(schemas):
    params = {"TableName": TABLE, "KeyConditionExpression": "pk = :p", "FilterExpression": "sk > :p",
              "ExpressionAttributeValues": {":p": {"S": "p"}}}
    assert "non-primary key" in problems_of("Query", params, schemas)


@pytest.mark.parametrize("expression", ["REMOVE pk", "REMOVE sk", "SET sk = :v", "REMOVE #k", "SET pk = :v"])
def test_rejects_updating_key_attributes(expression, schemas):
    params = {"TableName": TABLE, "Key": {"pk": {"S": "p"}, "sk": {"S": "s"}}, "UpdateExpression": expression}
    if ":v" in expression:
        params["ExpressionAttributeValues"] = {":v": {"S": "x"}}
    if "#k" in expression:
        params["ExpressionAttributeNames"] = {"#k": "pk"}
    assert "part of the key" in problems_of("UpdateItem", params, schemas)


def test_accepts_removing_the_index_key(schemas):
    """Aggregation takes items out of the sparse index by removing pk_status: allowed."""
    params = {"TableName": TABLE, "Key": {"pk": {"S": "p"}, "sk": {"S": "s"}}, "UpdateExpression": "REMOVE pk_status",
              "ConditionExpression": "#ts = :ts", "ExpressionAttributeNames": {"#ts": "ts"},
              "ExpressionAttributeValues": {":ts": {"S": "2025"}}}
    assert check("UpdateItem", params, schemas) == []


def test_rejects_overlapping_update_paths_and_repeated_clauses(schemas):
    key = {"pk": {"S": "p"}, "sk": {"S": "s"}}
    values = {":v": {"N": "1"}}
    assert "overlap" in problems_of("UpdateItem", {"TableName": TABLE, "Key": key, "UpdateExpression":
                                                   "SET a = :v REMOVE a", "ExpressionAttributeValues": values}, schemas)
    assert "more than once" in problems_of("UpdateItem", {"TableName": TABLE, "Key": key, "UpdateExpression":
                                                          "SET a = :v SET b = :v", "ExpressionAttributeValues": values}, schemas)
    assert "Key must name" in problems_of("UpdateItem", {"TableName": TABLE, "Key": {"pk": {"S": "p"}},
                                                         "UpdateExpression": "REMOVE a"}, schemas)


def test_rejects_items_over_400_kb(schemas):
    big = put(blob={"S": "x" * (400 * 1024)})
    assert "more than 409600" in problems_of("BatchWriteItem", {"RequestItems": {TABLE: [big]}}, schemas)
    fits = put(blob={"S": "x" * (400 * 1024 - 200)})
    assert check("BatchWriteItem", {"RequestItems": {TABLE: [fits]}}, schemas) == []


def test_rejects_key_values_that_are_too_long_or_empty(schemas):
    assert "more than 2048" in problems_of("PutItem", {"TableName": TABLE, "Item": put(pk="p" * 2049)["PutRequest"]["Item"]}, schemas)
    assert "more than 1024" in problems_of("PutItem", {"TableName": TABLE, "Item": put(sk="s" * 1025)["PutRequest"]["Item"]}, schemas)
    assert "empty" in problems_of("PutItem", {"TableName": TABLE, "Item": put(pk="")["PutRequest"]["Item"]}, schemas)
    empty_index_key = put(pk_status={"S": ""})["PutRequest"]["Item"]
    legacy = strict.legacy_project_schemas("test-bm")  # only a table with status-index minds
    assert "status-index" in problems_of("PutItem", {"TableName": TABLE, "Item": empty_index_key}, legacy)
    assert check("PutItem", {"TableName": TABLE, "Item": empty_index_key}, schemas) == []
    wrong_type = put(ts={"N": "1"})["PutRequest"]["Item"]
    assert "type S" in problems_of("PutItem", {"TableName": TABLE, "Item": wrong_type}, legacy)  # an index key
    # an empty string outside the keys is fine since 2020
    assert check("PutItem", {"TableName": TABLE, "Item": put(note={"S": ""})["PutRequest"]["Item"]}, schemas) == []


@pytest.mark.parametrize("value,fragment", [
    ({"N": "1" * 39}, "significant digits"),
    ({"N": "NaN"}, "NaN"),
    ({"N": "Infinity"}, "NaN"),
    ({"N": "1e126"}, "range"),
    ({"N": "1e-131"}, "range"),
    ({"N": "abc"}, "not a number"),
    ({"N": ""}, "not a numeric"),
    ({"SS": []}, "empty"),
    ({"SS": ["a", "a"]}, "duplicates"),
    ({"NS": ["1", "1.0"]}, "duplicates"),
    ({"S": "a", "N": "1"}, "exactly one type"),
    ({"NULL": False}, "NULL"),
])
def test_rejects_invalid_attribute_values(value, fragment, schemas):
    item = put(extra=value)["PutRequest"]["Item"]
    assert fragment in problems_of("PutItem", {"TableName": TABLE, "Item": item}, schemas)


def test_rejects_an_empty_attribute_name(schemas):
    item = put()["PutRequest"]["Item"] | {"": {"S": "x"}}
    assert "name is empty" in problems_of("PutItem", {"TableName": TABLE, "Item": item}, schemas)


def test_unknown_operations_are_reported():
    assert "not audited" in problems_of("Scan", {"TableName": TABLE}, {})


def test_hook_stops_the_request_before_it_leaves(mocked_aws, config):
    """moto itself takes a bare reserved word; through the checker the call fails."""
    client = dynamo.aws_client()
    dynamo.create_tables(config, client)
    table = dynamo.table_names(config["table_prefix"])["minutes"]
    params = {"TableName": table, "KeyConditionExpression": "pk = :p AND sk > :s", "Select": "COUNT",
              "FilterExpression": "reading = :one",
              "ExpressionAttributeValues": {":p": {"S": "p"}, ":s": {"S": "s"}, ":one": {"N": "1"}}}
    client.query(**params)  # moto: fine
    checker = StrictChecker(project_schemas(config["table_prefix"]))
    checker.attach(client)
    client.query(**params)
    with pytest.raises(StrictViolation, match="reserved keyword: data"):
        client.query(**{**params, "FilterExpression": "data = :one"})
    requests = [put(sk=f"time#{i:02d}") for i in range(26)]
    with pytest.raises(StrictViolation, match="more than 25"):
        client.batch_write_item(RequestItems={table: requests})
    assert len(checker.violations) == 2


def test_flush_never_sends_a_duplicate_key_even_with_many_same_minute_readings(strict_tables, config):
    store = filebuffer.Buffer(config["buffer_dir"])
    for second in range(0, 60, 2):  # 30 readings of one minute, then 40 distinct minutes
        store.write(filebuffer.Reading(config["device"], "4", START + dt.timedelta(seconds=second), {"reading": 1}))
    for minute in range(1, 41):
        store.write(filebuffer.Reading(config["device"], "4", START + dt.timedelta(minutes=minute), {"reading": 0}))
    result = dynamo.flush(config)
    assert strict_tables.violations == [] and result.left == 0 and result.sent == 70
