"""DynamoDB layout and access: key formats, tables, batched writes, queries; and a small CLI.

    python dynamo.py create-tables      # idempotent: tables, TTL
    python dynamo.py flush              # send the buffer
    python dynamo.py status --device NAME       # status.py
    python dynamo.py policy --device NAME [--admin]   # policy.py

This module is the one place that knows the key formats. It imports boto3 only inside the
functions that talk to AWS, so the minute jobs pay for boto3 only when they flush.
"""

import datetime as dt
import json
import logging
import random
import sys
import time
from dataclasses import dataclass, field

import filebuffer
from filebuffer import format_ts  # the items' ts is the buffer's: defined there, for the minute path
from utils import (
    EXIT_FAILED,
    EXIT_OK,
    ArgumentParser,
    ConfigError,
    NOT_MAILED,
    JobFailed,
    add_config_flags,
    load_config,
    run_cli,
    setup_logging,
    utc_now,
)

log = logging.getLogger("dynamo")

INDEX_NAME = "status-index"  # legacy: tables made before markers of new hours; read only to upgrade them
FLUSH_LOCK = filebuffer.FLUSH_LOCK
TABLE_KINDS = ("minutes", "hours", "days")
BATCH_LIMIT = 25  # BatchWriteItem's documented maximum
FLUSH_BUDGET_SECONDS = 40.0  # a minute job must end well inside its minute
FLUSH_WORKERS = 4  # BatchWriteItem requests in flight at once
FLUSH_READ_TIMEOUT_SECONDS = 5  # a batch is a few KB; 3 attempts must fit the minute with the budget
BACKOFF_BASE_SECONDS = 0.05
BACKOFF_CAP_SECONDS = 2.0
UNREACHABLE_CODES = {
    "ProvisionedThroughputExceededException", "ThrottlingException", "RequestLimitExceeded",
    "InternalServerError", "ServiceUnavailable", "InternalFailure",
}
CREDENTIAL_CODES = {
    "UnrecognizedClientException", "InvalidSignatureException", "AccessDeniedException",
    "ExpiredTokenException", "MissingAuthenticationTokenException", "InvalidClientTokenId",
}


# --- keys: the only place their formats are written -------------------------------------

def sensor_prefix(device, sensor):
    return f"device#{device}#sensor#{sensor}"


def status_key(device, sensor):
    """pk of the sensor's markers of new hours (and pk_status of a legacy table's new items)."""
    return f"{sensor_prefix(device, sensor)}#status#new"


def marker_key(device, sensor, hour):
    """(pk, sk) of the marker saying the hour starting at `hour` (UTC) has new readings."""
    return status_key(device, sensor), f"hour#{hour:%Y-%m-%d-%H}"


def marker_hour(sk):
    """The UTC hour a marker's sk names (ValueError if it names none)."""
    kind, _, text = sk.partition("#")
    if kind != "hour":
        raise ValueError(f"not a marker sort key: {sk!r}")
    return dt.datetime.strptime(text, "%Y-%m-%d-%H").replace(tzinfo=dt.timezone.utc)


def marker_item(device, sensor, hour, ts):
    """A marker of a new hour, written at `ts`: `ts` changes with each write, so a conditional
    delete on the `ts` read removes it only if nothing was marked since."""
    pk, sk = marker_key(device, sensor, hour)
    return {"pk": {"S": pk}, "sk": {"S": sk}, "ts": {"S": format_ts(ts)}}


def minute_key(device, sensor, ts):
    """(pk, sk) of a minute item: the hour partition and the minute."""
    return f"{sensor_prefix(device, sensor)}#date#{ts:%Y-%m-%d-%H}", f"time#{ts:%M}"


def hour_key(device, sensor, hour_start):
    """(pk, sk) of an hour item: the day partition and the hour."""
    return f"{sensor_prefix(device, sensor)}#date#{hour_start:%Y-%m-%d}", f"time#{hour_start:%H}"


def day_key(device, sensor, day):
    """(pk, sk) of a day item: the month partition and the day."""
    return f"{sensor_prefix(device, sensor)}#date#{day:%Y-%m}", f"time#{day:%d}"


def registry_key(device, sensor):
    """(pk, sk) of the item that records that `device` has `sensor` (kept in the minutes table).

    It starts with device#NAME# so a device's IAM policy (dynamodb:LeadingKeys) covers it.
    """
    return f"device#{device}#registry", f"sensor#{sensor}"


def latest_key(device, sensor):
    """(pk, sk) of the item that holds the `ts` of a sensor's newest reading (minutes table).

    The flush keeps it (at most one write per sensor and hour), so `status` and the watchdog
    find the newest reading with a Query by key, however old it is.
    """
    return f"device#{device}#latest", f"sensor#{sensor}"


def watchdog_key(device):
    """(pk, sk) of the watchdog's state item of `device` (kept in the minutes table).

    It does not start with device#NAME#, so a device's policy (dynamodb:LeadingKeys
    device#NAME#*) can't write it: only read it, through its own ReadWatchdogState statement.
    """
    return f"watchdog#device#{device}", "state"


def parse_partition(pk):
    """(device, sensor, period_start) from a minutes/hours/days pk; period_start is UTC."""
    parts = pk.split("#")
    if len(parts) != 6 or parts[0] != "device" or parts[2] != "sensor" or parts[4] != "date":
        raise ValueError(f"not a data partition key: {pk!r}")
    fields = [int(part) for part in parts[5].split("-")]
    if len(fields) in (3, 4):  # a day (hours table) or an hour (minutes table)
        start = dt.datetime(*fields, tzinfo=dt.timezone.utc)
    elif len(fields) == 2:
        start = dt.datetime(fields[0], fields[1], 1, tzinfo=dt.timezone.utc)
    else:
        raise ValueError(f"not a data partition key: {pk!r}")
    return parts[1], parts[3], start


def sk_number(sk):
    """The minute, hour or day number in an sk such as time#07."""
    return int(sk.split("#", 1)[1])


def period_start(pk, sk):
    """When the minute, hour or day of a minutes, hours or days item begins (UTC)."""
    _device, _sensor, start = parse_partition(pk)
    number = sk_number(sk)
    fields = pk.rsplit("#", 1)[1].count("-") + 1
    if fields == 4:
        return start + dt.timedelta(minutes=number)
    if fields == 3:
        return start + dt.timedelta(hours=number)
    return start + dt.timedelta(days=number - 1)


def table_names(prefix):
    return {kind: f"{prefix}-{kind}" for kind in TABLE_KINDS}


def number(value):
    """A DynamoDB number attribute value."""
    return {"N": format(value, "d") if isinstance(value, int) else repr(float(value))}


def minute_item(reading, retention_days=None):
    """The minutes-table item of a buffered reading, in DynamoDB's attribute-value form."""
    pk, sk = minute_key(reading.device, reading.sensor, reading.ts)
    item = {
        "pk": {"S": pk},
        "sk": {"S": sk},
        "ts": {"S": format_ts(reading.ts)},
    }
    for name, value in reading.values.items():
        item[name] = number(value)
    if retention_days:
        item["ttl"] = number(int(reading.ts.timestamp()) + retention_days * 86400)
    return item


def attribute_value(value):
    """A plain value (str, int, float; bool, None, and lists and dicts of them, as the schedule's
    windows are stored) in DynamoDB's attribute-value form."""
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, (list, tuple)):
        return {"L": [attribute_value(element) for element in value]}
    if isinstance(value, dict):
        return {"M": {key: attribute_value(element) for key, element in value.items()}}
    return number(value)


def attribute_values(attributes):
    """Plain attributes in DynamoDB's attribute-value form (see attribute_value)."""
    return {name: attribute_value(value) for name, value in attributes.items()}


def hour_item(device, sensor, hour_start, stats, ts):
    """The hours-table item of an hour's statistics."""
    pk, sk = hour_key(device, sensor, hour_start)
    return attribute_values({"pk": pk, "sk": sk, "ts": format_ts(ts), **stats})


def day_item(device, sensor, day, stats, ts):
    """The days-table item of a day's statistics (`day` is the local date; see day_attributes)."""
    pk, sk = day_key(device, sensor, day)
    return attribute_values({"pk": pk, "sk": sk, "ts": format_ts(ts), **stats})


def day_attributes(start, zone):
    """`tz` and `start` of a days item: the zone's IANA name, local midnight with its offset."""
    return {"tz": zone.key, "start": start.astimezone(zone).isoformat()}


def day_zone(item):
    """The zone a plain days item was computed in (items older than `tz` are UTC days)."""
    return item.get("tz", "UTC")


def day_start(item):
    """When the day of a plain days item begins, in UTC."""
    if "start" in item:
        return dt.datetime.fromisoformat(item["start"]).astimezone(dt.timezone.utc)
    return period_start(item["pk"], item["sk"])  # an item older than `start`: a UTC day


def consumed(item):
    """The item without the legacy pk_status (it drops out of a legacy table's status-index)."""
    return {name: value for name, value in item.items() if name != "pk_status"}


def plain(item):
    """A DynamoDB item as plain Python: numbers as int or float, strings as str."""
    return {name: plain_value(value) for name, value in item.items()}


def plain_value(value):
    """One attribute value as plain Python (lists and maps too: the schedule's windows)."""
    (kind, raw), = value.items()
    if kind == "N":
        return int(raw) if raw.lstrip("-").isdigit() else float(raw)
    if kind == "L":
        return [plain_value(element) for element in raw]
    if kind == "M":
        return {key: plain_value(element) for key, element in raw.items()}
    if kind == "NULL":
        return None
    return raw


# --- clients and errors -------------------------------------------------------------------

def aws_client(service="dynamodb", region=None, read_timeout=10, max_pool_connections=10, attempts=3):
    """A client with standard retries and short timeouts: a dead link can't hang cron.

    It is botocore's own client, which boto3.client() returns too, made from a botocore session
    directly: boto3's session adds only resource and S3-transfer hooks, which the project does
    not use, and costs a minute job a tenth of its CPU. Credentials, profiles, region and
    endpoint are read by the same chain as boto3's.
    boto3 reads AWS_DEFAULT_REGION but not AWS_REGION (the name the other AWS SDKs use);
    the README promises both, so AWS_REGION is passed on when boto3 would find no region.
    `region` overrides both (SNS: the topic ARN's region).
    """
    import os

    import botocore.session
    from botocore.config import Config
    from botocore.exceptions import InvalidRegionError, NoRegionError, ProfileNotFound

    config = Config(
        # three attempts in all (max_attempts would count retries: four), so a dead link costs
        # a minute job at most 3 x (connect + read timeout)
        retries={"mode": "standard", "total_max_attempts": attempts},
        connect_timeout=3,
        read_timeout=read_timeout,
        max_pool_connections=max_pool_connections,  # threads sharing the client (watchdog.py)
    )
    region = region or (None if os.environ.get("AWS_DEFAULT_REGION") else os.environ.get("AWS_REGION") or None)
    try:
        session = _botocore_session(botocore.session)
        client = session.create_client(service, config=config, region_name=region)
    except NoRegionError:
        raise ConfigError("no AWS region: set AWS_REGION (or a profile with a region)") from None
    except ProfileNotFound as error:
        raise ConfigError(f"AWS profile {error.kwargs.get('profile')!r} not found (AWS_PROFILE)") from None
    except InvalidRegionError as error:
        raise ConfigError(f"{error.kwargs.get('region_name')!r} is not a valid AWS region") from None
    except ValueError as error:  # botocore: "Invalid endpoint: ..."
        endpoint = str(error).partition(": ")[2] or str(error)
        raise ConfigError(f"endpoint {endpoint!r} is not a URL (AWS_ENDPOINT_URL...)") from None
    check_region(client, session)
    return client


def check_region(client, session):
    """Refuse a region no AWS partition has, when the client talks to AWS itself.

    botocore builds an endpoint for any well-formed name (dynamodb.eu-centrl-1.amazonaws.com),
    so a typo would look like a dead link forever: readings pile up, the log says
    "unreachable", cron mails nothing. A local endpoint (AWS_ENDPOINT_URL...) takes any region.
    """
    from urllib.parse import urlsplit

    region = client.meta.region_name
    host = urlsplit(client.meta.endpoint_url).hostname or ""
    if f".{region}." not in f".{host}.":  # an endpoint of the user's own: any region goes
        return
    service = client.meta.service_model.service_name
    known = {name for partition in session.get_available_partitions()
             for name in session.get_available_regions(service, partition)}
    if known and region not in known:
        raise ConfigError(f"unknown AWS region {region!r}: no AWS partition has it "
                          "(AWS_REGION, AWS_DEFAULT_REGION or the profile's region)")


_SESSION = []  # the process's botocore session, made on first use


def _botocore_session(botocore_session):
    """One session for the process, as boto3 keeps one: credentials are resolved once."""
    if not _SESSION:
        _SESSION.append(botocore_session.Session())
    return _SESSION[0]


class CloudUnreachable(Exception):
    """DynamoDB could not be reached or kept refusing; try again later."""


def classify(error, table=None):
    """Turn a botocore error into CloudUnreachable, ConfigError or JobFailed."""
    from botocore.exceptions import (
        ClientError,
        ConnectionError as BotoConnectionError,
        HTTPClientError,
        NoCredentialsError,
        PartialCredentialsError,
    )

    if isinstance(error, (BotoConnectionError, HTTPClientError)):
        return CloudUnreachable(str(error))
    if isinstance(error, (NoCredentialsError, PartialCredentialsError)):
        return ConfigError("no AWS credentials found: configure them as boto3 reads them (README)")
    if isinstance(error, ClientError):
        code = error.response.get("Error", {}).get("Code", "")
        status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        if code in UNREACHABLE_CODES or status >= 500:
            return CloudUnreachable(f"{code}: {error}")
        if not code or code.isdigit():  # no AWS error at all: a captive portal or proxy answered
            return CloudUnreachable(f"the endpoint answered HTTP {status} without a DynamoDB error")
        if code == "ResourceNotFoundException":
            name = f"table {table}" if table else "a table"
            return ConfigError(f"{name} does not exist: run 'python dynamo.py create-tables'")
        if code in CREDENTIAL_CODES:
            return ConfigError(f"AWS refused the credentials ({code})")
        return JobFailed(f"DynamoDB rejected the request: {code}: {error.response['Error'].get('Message', '')}")
    return error


def call(operation, table=None, **kwargs):
    """Run a client call, raising the project's errors instead of botocore's."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        return operation(**kwargs)
    except (BotoCoreError, ClientError) as error:
        problem = classify(error, table)
        if isinstance(problem, CloudUnreachable):  # where it tried: link.py probes it next minute
            problem.endpoint = getattr(getattr(getattr(operation, "__self__", None), "meta", None),
                                       "endpoint_url", None)
        raise problem from None


def query_all(client, **kwargs):
    """Every item of a query, following LastEvaluatedKey."""
    while True:
        page = call(client.query, kwargs.get("TableName"), **kwargs)
        yield from page.get("Items", [])
        if "LastEvaluatedKey" not in page:
            return
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


def write_batch(client, request_items, deadline, sleep=time.sleep, clock=time.monotonic):
    """One BatchWriteItem (at most 25 requests over any tables), UnprocessedItems retried with
    exponential backoff and full jitter until `deadline`; returns what is still unprocessed
    ({} once everything was acknowledged)."""
    size = sum(len(requests) for requests in request_items.values())
    if size > BATCH_LIMIT:
        raise ValueError(f"a batch takes at most {BATCH_LIMIT} requests, not {size}")
    pending, attempt = request_items, 0
    while pending:
        response = call(client.batch_write_item, next(iter(pending)), RequestItems=pending)
        unprocessed = {table: left for table, left in response.get("UnprocessedItems", {}).items() if left}
        if not unprocessed:
            return {}
        attempt += 1
        delay = random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** attempt))
        if clock() + delay >= deadline:
            return unprocessed
        log.info("%d of %d items unprocessed; retrying in %.2fs",
                 sum(map(len, unprocessed.values())), sum(map(len, pending.values())), delay)
        sleep(delay)
        pending = unprocessed
    return {}


def batch_write(client, table, requests, deadline, sleep=time.sleep, clock=time.monotonic):
    """BatchWriteItem up to 25 requests to one table (see write_batch).

    Returns the requests DynamoDB acknowledged (all of them unless the deadline passed).
    Requests must have distinct keys: DynamoDB rejects a batch that names a key twice.
    """
    left = write_batch(client, {table: list(requests)}, deadline, sleep, clock).get(table, [])
    if not left:
        return requests
    left = {_request_key(request) for request in left}
    return [request for request in requests if _request_key(request) not in left]


def put_all(client, items, budget=300.0):
    """Put (table, item) pairs, distinct keys, in batches of 25 that may mix tables.

    Raises CloudUnreachable if DynamoDB keeps items unprocessed for `budget` seconds.
    """
    return _write_all(client, [(table, {"PutRequest": {"Item": item}}) for table, item in items], budget)


def _write_all(client, requests, budget):
    """Send (table, write request) pairs in batches of 25; put_all's and delete_all's one loop."""
    deadline = time.monotonic() + budget
    for start in range(0, len(requests), BATCH_LIMIT):
        batch = {}
        for table, request in requests[start:start + BATCH_LIMIT]:
            batch.setdefault(table, []).append(request)
        if write_batch(client, batch, deadline):
            raise CloudUnreachable(f"DynamoDB kept items unprocessed for {budget:.0f}s")
    return len(requests)


def _request_key(request):
    body = request.get("PutRequest", {}).get("Item") or request["DeleteRequest"]["Key"]
    return body["pk"]["S"], body["sk"]["S"]


def delete_all(client, keys, budget=300.0):
    """Delete (table, key) pairs, distinct keys, in batches of 25 (no condition: for items only
    the aggregator writes). Raises CloudUnreachable as put_all does."""
    return _write_all(client, [(table, {"DeleteRequest": {"Key": key}}) for table, key in keys], budget)


def delete_marker(client, table, device, sensor, hour, ts):
    """Delete the marker of `hour` if its `ts` is still `ts` (nothing marked since it was read);
    True if it was deleted, False if it was written again meanwhile (or is gone)."""
    from botocore.exceptions import BotoCoreError, ClientError

    pk, sk = marker_key(device, sensor, hour)
    try:
        client.delete_item(TableName=table, Key={"pk": {"S": pk}, "sk": {"S": sk}},
                           ConditionExpression="#ts = :ts", ExpressionAttributeNames={"#ts": "ts"},
                           ExpressionAttributeValues={":ts": {"S": ts}})
        return True
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise classify(error, table) from None
    except BotoCoreError as error:
        raise classify(error, table) from None


def markers(client, table, device, sensor, log_bad=None):
    """{hour: ts} of the sensor's markers of new hours: one paginated Query of their partition.

    The partition is the device's own, so the device could write anything there: a marker that
    is not as the flush writes it (sk hour#YYYY-MM-DD-HH from 2024 to a day after now, ts an ISO
    time) is skipped with a warning, never aggregated, so it cannot stop the device's own run."""
    import untrusted  # it imports this module

    found, now = {}, utc_now()
    for item in query_all(client, TableName=table, ConsistentRead=True, KeyConditionExpression="pk = :pk",
                          ExpressionAttributeValues={":pk": {"S": status_key(device, sensor)}}):
        try:
            _, _, hour, _ = untrusted.new_hour_marker(item, device, sensor, now=now)
            found[hour] = item["ts"]["S"]  # as stored: the conditional delete compares it
        except (untrusted.BadItem, KeyError, TypeError, ValueError) as error:
            (log_bad or log.warning)("skipping a bad marker item sk=%s: %s",
                                     untrusted.one_line(repr(item.get("sk")), 80), error)
    return found


# --- create-tables --------------------------------------------------------------------------

def table_definition(name):
    """A table as create-tables makes it: keys only, no index (markers of new hours are items)."""
    return {
        "TableName": name,
        "BillingMode": "PAY_PER_REQUEST",
        "AttributeDefinitions": [{"AttributeName": attribute, "AttributeType": "S"} for attribute in ("pk", "sk")],
        "KeySchema": [
            {"AttributeName": "pk", "KeyType": "HASH"},
            {"AttributeName": "sk", "KeyType": "RANGE"},
        ],
    }


def legacy_table_definition(name):
    """A table as earlier versions made it, with status-index: check_layout still accepts it,
    the first aggregation upgrades it (legacy.py), and its tests make such tables."""
    definition = table_definition(name)
    definition["AttributeDefinitions"] += [{"AttributeName": attribute, "AttributeType": "S"}
                                           for attribute in ("pk_status", "ts")]
    definition["GlobalSecondaryIndexes"] = [{
        "IndexName": INDEX_NAME,
        "KeySchema": [{"AttributeName": "pk_status", "KeyType": "HASH"}, {"AttributeName": "ts", "KeyType": "RANGE"}],
        "Projection": {"ProjectionType": "KEYS_ONLY"},
    }]
    return definition


LEGACY_INDEX_KEYS = [("pk_status", "HASH"), ("ts", "RANGE")]  # sorted, as check_layout compares


@dataclass
class TablesCreated:
    created: list  # names of the tables this run created
    ttl_enabled: str = None  # the table whose TTL this run switched on, if any


def create_tables(config, client=None):
    """Create the three tables if missing; wait until ACTIVE; TTL.

    Returns what this run changed (TablesCreated), so the command can say so."""
    client = client or aws_client()
    names = table_names(config["table_prefix"])
    created = []
    for kind, name in names.items():
        try:
            call(client.create_table, name, **table_definition(name))
            created.append(name)
            log.info("creating table %s", name)
        except JobFailed as error:
            if "ResourceInUseException" not in str(error):
                raise
    for name in names.values():
        waiter = client.get_waiter("table_exists")
        waiter.wait(TableName=name, WaiterConfig={"Delay": 2, "MaxAttempts": 90})
        check_layout(call(client.describe_table, name, TableName=name)["Table"])
    ttl_enabled = None
    if config.get("retention_days") and enable_ttl(client, names["minutes"]):
        ttl_enabled = names["minutes"]
    return TablesCreated(created, ttl_enabled)


def check_layout(description):
    """Refuse to use an existing table whose keys differ from ours, or whose status-index (a
    table of an earlier version has one) is not the one that version made."""
    expected = table_definition(description["TableName"])
    keys = sorted((k["AttributeName"], k["KeyType"]) for k in description.get("KeySchema", []))
    indexes = {index["IndexName"]: index for index in description.get("GlobalSecondaryIndexes", [])}
    wanted = sorted((k["AttributeName"], k["KeyType"]) for k in expected["KeySchema"])
    index = indexes.get(INDEX_NAME)
    index_keys = sorted((k["AttributeName"], k["KeyType"]) for k in index["KeySchema"]) if index else None
    if keys != wanted or index_keys not in (None, LEGACY_INDEX_KEYS):
        raise JobFailed(
            f"table {description['TableName']} exists with another layout "
            f"(keys {keys}, {INDEX_NAME} {index_keys}): use another --table-prefix"
        )


def has_legacy_index(description):
    """Whether a table (DescribeTable's answer) still has the status-index of earlier versions."""
    return any(index["IndexName"] == INDEX_NAME for index in description.get("GlobalSecondaryIndexes", []))


def enable_ttl(client, table):
    """Switch on TTL (attribute `ttl`) unless it is on; True when this call switched it on."""
    current = call(client.describe_time_to_live, table, TableName=table)["TimeToLiveDescription"]
    if current.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return False
    call(client.update_time_to_live, table, TableName=table,
         TimeToLiveSpecification={"Enabled": True, "AttributeName": "ttl"})
    log.info("enabled TTL on %s", table)
    return True


# --- flush ------------------------------------------------------------------------------------

@dataclass
class FlushResult:
    sent: int = 0  # readings acknowledged by DynamoDB (files removed)
    left: int = 0  # readings still buffered (budget, or the cloud went away)
    batches: int = 0
    held: list = field(default_factory=list)  # why readings were set aside in held/ (another device's name)


REGISTRY_FILE = ".registered.json"


def _registered(buffer, today):
    """Registry entries written today. Older ones are written again, once a day: tables
    recreated or another endpoint must not leave a sensor unregistered for good."""
    try:
        document = json.loads((buffer.directory / REGISTRY_FILE).read_text())
        return {entry for entry, day in document.items() if day == today}
    except (OSError, ValueError, TypeError, AttributeError):
        return set()


def register_sensors(client, buffer, table, readings, known, today):
    """Write each new (device, sensor) registry item, so the aggregator needs no Scan.

    `known` is the set of entries already registered today; it is updated in place. An entry
    names the endpoint and region too: the same buffer may have served another.
    """
    place = table_place(client, table)
    new = {f"{place}|{r.device}|{r.sensor}" for r in readings} - known
    for entry in sorted(new):
        device, sensor = entry.rsplit("|", 2)[-2:]
        pk, sk = registry_key(device, sensor)
        call(client.put_item, table, TableName=table,
             Item={"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": device}, "sensor": {"S": sensor}})
    if new:
        known |= new
        filebuffer.write_atomically(buffer.directory, REGISTRY_FILE,
                                    json.dumps({entry: today for entry in sorted(known)}))


MARKERS_FILE = ".markers.json"
HOUR = dt.timedelta(hours=1)


def _marked(buffer, now):
    """Markers this buffer wrote for hours still under way at `now` (place|device|sensor|hour)."""
    try:
        document = json.loads((buffer.directory / MARKERS_FILE).read_text())
        return {entry for entry in document
                if dt.datetime.fromisoformat(entry.rsplit("|", 1)[1]) + HOUR > now}
    except (OSError, ValueError, TypeError, AttributeError, IndexError):
        return set()


def markers_due(buffer, place, readings, now):
    """The marker items the acknowledged `readings` call for at `now`, and the entries of
    hours under way to remember once they are stored.

    A hour still under way is marked once (the aggregator never deletes its marker before it is
    over); a hour already over is marked again with each reading of it, since the aggregator
    may have read the hour and deleted its marker before this reading arrived.
    """
    remembered, items, under_way = _marked(buffer, now), {}, set()
    for reading in readings:
        hour = reading.ts.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
        entry = f"{place}|{reading.device}|{reading.sensor}|{hour.isoformat()}"
        if hour + HOUR > now:
            if entry in remembered:
                continue
            under_way.add(entry)
        items[marker_key(reading.device, reading.sensor, hour)] = marker_item(reading.device, reading.sensor, hour, now)
    return list(items.values()), remembered, under_way


LATEST_FILE = ".latest.json"


def table_place(client, table):
    """endpoint|region|table: what the buffer's records of writes (markers, latest, the upgrade)
    are kept per, so recreated tables or another endpoint start afresh."""
    meta = getattr(client, "meta", None)  # test stubs have none
    return f"{getattr(meta, 'endpoint_url', '')}|{getattr(meta, 'region_name', '')}|{table}"


def _hour_label(ts):
    return ts.astimezone(dt.timezone.utc).strftime("%Y-%m-%d-%H")


def note_latest(client, buffer, table, newest):
    """Keep each sensor's `latest` item at its newest reading, writing only when the reading's
    hour is past the hour this buffer last wrote there: one small write per sensor and hour,
    not one per reading. `newest` maps (device, sensor) to the newest acknowledged reading's ts.

    The write is conditional on advancing the stored `ts`, so readings replayed from the past
    (`--at`, a held file put back) never move it back. `status` reads the newest reading from
    the minute partitions of that hour and the next.
    """
    from botocore.exceptions import BotoCoreError, ClientError

    place = table_place(client, table)
    try:
        written = json.loads((buffer.directory / LATEST_FILE).read_text())
        written = written if isinstance(written, dict) else {}
    except (OSError, ValueError):
        written = {}
    changed = False
    for (device, sensor), ts in sorted(newest.items()):
        entry = f"{place}|{device}|{sensor}"
        if str(written.get(entry, "")) >= _hour_label(ts):
            continue
        pk, sk = latest_key(device, sensor)
        try:
            client.put_item(TableName=table, Item={"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": device},
                                                   "sensor": {"S": sensor}, "ts": {"S": format_ts(ts)}},
                            ConditionExpression="attribute_not_exists(ts) OR ts < :ts",
                            ExpressionAttributeValues={":ts": {"S": format_ts(ts)}})
        except ClientError as error:
            if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
                raise classify(error, table) from None  # else a newer reading is there already: fine
        except BotoCoreError as error:
            raise classify(error, table) from None
        written[entry], changed = _hour_label(ts), True
    if changed:
        filebuffer.write_atomically(buffer.directory, LATEST_FILE, json.dumps(written, sort_keys=True))


def flush(config, budget=FLUSH_BUDGET_SECONDS, client=None, clock=time.monotonic, sleep=time.sleep):
    """Send buffered readings oldest first in batches of 25, then the markers of their hours;
    delete each file once its reading and its hour's marker are acknowledged.

    Up to FLUSH_WORKERS batches are in flight at once: on a slow link the round trips, not the
    bytes, are what a backlog costs. The batches of one round have distinct keys (a later
    reading of a minute replaces an earlier one before sending), and a round starts only when
    the one before it ended, so no two writes of one key ever race. A marker is written after
    its readings: an aggregator that reads it finds them.

    Raises buffer.BufferLocked when another flush runs, CloudUnreachable when DynamoDB can't be
    reached (the rest stays buffered), ConfigError for missing tables or credentials.
    """
    buffer = filebuffer.Buffer(config["buffer_dir"])
    table = table_names(config["table_prefix"])["minutes"]
    result = FlushResult()
    latest = {}  # (device, sensor) -> ts of the newest reading DynamoDB acknowledged
    deadline = clock() + budget
    with buffer.lock():
        paths = buffer.pending()
        today = utc_now().date().isoformat()
        registered = _registered(buffer, today)
        index = 0
        while index < len(paths):
            if clock() >= deadline:
                log.info("flush budget of %.0fs spent; the rest waits for the next run", budget)
                break
            pending = {}  # (pk, sk) -> (reading, [paths]); a later reading of a minute replaces it
            while index < len(paths) and len(pending) < BATCH_LIMIT * FLUSH_WORKERS:
                path = paths[index]
                index += 1
                reading = buffer.load(path)
                if reading is None:
                    continue
                if config.get("device") and reading.device != config["device"]:
                    # IAM would refuse the whole batch: set aside, never sent with the others
                    reason = (f"its device is {reading.device}, not {config['device']} (device renamed, or a "
                              f"--device run on this Pi): its credentials may write only {config['device']}'s keys")
                    if buffer.set_aside(path, reading, reason):
                        result.held.append(f"{path.name}: {reason}")
                    continue
                key = minute_key(reading.device, reading.sensor, reading.ts)
                earlier, earlier_paths = pending.get(key, (None, []))
                newest = reading if earlier is None or reading.ts >= earlier.ts else earlier
                pending[key] = (newest, earlier_paths + [path])
            if not pending:
                continue
            client = client or aws_client(read_timeout=FLUSH_READ_TIMEOUT_SECONDS)
            register_sensors(client, buffer, table, [reading for reading, _ in pending.values()], registered, today)
            requests = [
                {"PutRequest": {"Item": minute_item(reading, config.get("retention_days"))}}
                for reading, _ in pending.values()
            ]
            acknowledged, failure, stuck = _send_all(client, table, requests, deadline, sleep, clock)
            result.batches += acknowledged["batches"]
            stored = [pending[key] for key in acknowledged["keys"]]
            # each round marks its hours and removes its files: a flush cut short keeps its progress
            if stored:
                result.sent += _mark_and_remove(client, buffer, table, stored, deadline, sleep, clock, result)
            for reading, _paths in stored:
                key = (reading.device, reading.sensor)
                latest[key] = max(latest.get(key, reading.ts), reading.ts)
            if failure is not None:
                raise failure  # once every acknowledged file is gone: nothing is sent twice
            if stuck:
                log.info("flush budget spent retrying unprocessed items")
                break
        if latest:
            note_latest(client, buffer, table, latest)
        result.left = buffer.count()
    return result


def _mark_and_remove(client, buffer, table, stored, deadline, sleep, clock, result):
    """Write the markers the stored readings ([(reading, [paths])], acknowledged) call for, then
    delete the files of the readings
    whose hour is marked (the others are sent again with their marker next time); returns how
    many files were deleted. Raises the marker write's failure after deleting what it can."""
    place = table_place(client, table)
    marker_items, remembered, under_way = markers_due(buffer, place, [reading for reading, _ in stored], utc_now())
    marked, failure, _stuck = _send_all(client, table, [{"PutRequest": {"Item": item}} for item in marker_items],
                                        deadline, sleep, clock)
    result.batches += marked["batches"]
    unmarked = {(item["pk"]["S"], item["sk"]["S"]) for item in marker_items} - marked["keys"]
    written = {entry for entry in under_way if _entry_marker(entry) in marked["keys"]}
    if written:  # remembered only once stored: a lost marker is written again
        filebuffer.write_atomically(buffer.directory, MARKERS_FILE, json.dumps(sorted(remembered | written)))
    removed = buffer.remove([path for reading, paths in stored
                             if marker_key(reading.device, reading.sensor, _hour_of(reading.ts)) not in unmarked
                             for path in paths])
    if failure is not None:
        result.sent += removed
        raise failure
    if unmarked:
        log.info("%d markers unprocessed; their readings are sent again next time", len(unmarked))
    return removed


def _hour_of(ts):
    return ts.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)


def _entry_marker(entry):
    """The marker key of a remembered entry place|device|sensor|hour."""
    device, sensor, hour = entry.rsplit("|", 3)[-3:]
    return marker_key(device, sensor, dt.datetime.fromisoformat(hour))


def _send_all(client, table, requests, deadline, sleep, clock):
    """Write `requests` (distinct keys) in batches of 25, FLUSH_WORKERS at once; returns
    ({"keys": acknowledged keys, "batches": batches answered}, the first failure or None,
    whether some stayed unprocessed until the deadline)."""
    batches = [requests[start:start + BATCH_LIMIT] for start in range(0, len(requests), BATCH_LIMIT)]
    done, failure, stuck = {"keys": set(), "batches": 0}, None, False
    if not batches:
        return done, failure, stuck

    def send(batch):
        return batch_write(client, table, batch, deadline, sleep=sleep, clock=clock)

    for batch, outcome in zip(batches, _concurrently(send, batches)):
        if isinstance(outcome, Exception):
            failure = failure or outcome
            continue
        done["batches"] += 1
        done["keys"] |= {_request_key(request) for request in outcome}
        stuck = stuck or len(outcome) < len(batch)
    return done, failure, stuck


def _concurrently(function, batches):
    """function(batch) for each batch, in threads when there are several (boto3 clients are
    thread-safe); returns each result, or the exception that ended it, in order."""
    def run(batch):
        try:
            return function(batch)
        except Exception as error:  # handed back, so the other batches' acknowledgements count
            return error

    if len(batches) == 1:  # the minute job's usual case: no thread pool
        return [run(batches[0])]
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=len(batches)) as pool:
        return list(pool.map(run, batches))


def flush_and_report(config, budget=FLUSH_BUDGET_SECONDS):
    """Flush as the minute jobs do: an unreachable cloud or a busy lock is logged, not fatal."""
    import link

    try:
        result = flush(config, budget)
    except filebuffer.BufferLocked:
        log.info("another flush (or an aggregation) holds the buffer; the readings wait for the next flush")
        return None
    except CloudUnreachable as error:
        log.warning("DynamoDB unreachable, readings stay buffered (%d waiting): %s",
                    filebuffer.Buffer(config["buffer_dir"]).count(), error, extra=NOT_MAILED)
        if getattr(error, "endpoint", None):
            try:  # the next minutes probe that endpoint before paying for boto3
                link.record_down(config["buffer_dir"], error.endpoint, error, utc_now())
            except OSError as problem:
                log.warning("can't record the link as down in %s: %s", config["buffer_dir"], problem)
        return None
    except (filebuffer.BufferError, OSError) as error:
        raise JobFailed(f"can't flush the buffer in {config['buffer_dir']}: {error}") from None
    if result.batches:  # DynamoDB answered
        link.record_up(config["buffer_dir"])
    log.info("flushed %d readings in %d batches, %d left", result.sent, result.batches, result.left)
    if result.held:  # said once (they left the buffer), with exit 1 so cron mails it
        raise JobFailed(f"{len(result.held)} buffered readings held in {buffer_held_dir(config)}, never sent: "
                        f"{result.held[0]}; see README (held readings) for 'dynamo.py release-held'")
    return result


def buffer_held_dir(config):
    return filebuffer.Buffer(config["buffer_dir"]).held_dir


# --- queries shared by status, the watchdog and the aggregator ---------------------------------

def sensors_of(client, table, device):
    """The sensors `device` has recorded, from its registry items."""
    import untrusted  # a registry item is the Pi's own: checked, a bad one skipped

    pk, _ = registry_key(device, "")
    sensors = set()
    for item in query_all(client, TableName=table, KeyConditionExpression="pk = :pk",
                          ExpressionAttributeValues={":pk": {"S": pk}}):
        try:
            sensors.add(untrusted.registry_item(item, device))
        except untrusted.BadItem as error:
            untrusted.skip("registry", item, error, log)
    return sorted(sensors, key=lambda s: (not s.isdigit(), s.zfill(3)))


def minute_range(client, table, device, sensor, start, end, newest_first=False, limit=None):
    """The minutes items of one sensor from the minute of `start` to that of `end` (inclusive,
    UTC), as plain dicts, oldest first (or newest first); at most `limit` of them. Each is
    checked (untrusted.minute_item: its `ts` in its key's minute, its values the sensor's); a
    bad one is skipped with a log line and does not count towards `limit`.

    One Query per hour partition, each reading only the minutes asked for: the cost follows
    the span, never the table's size.
    """
    import untrusted

    hours, hour = [], start.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    while hour <= end:
        first = minute_key(device, sensor, max(start, hour))
        last = minute_key(device, sensor, min(end, hour + dt.timedelta(minutes=59)))
        hours.append((first[0], first[1], last[1]))
        hour += dt.timedelta(hours=1)
    found = 0
    for pk, first, last in reversed(hours) if newest_first else hours:
        kwargs = {"TableName": table, "KeyConditionExpression": "pk = :pk AND sk BETWEEN :first AND :last",
                  "ExpressionAttributeValues": {":pk": {"S": pk}, ":first": {"S": first}, ":last": {"S": last}},
                  "ScanIndexForward": not newest_first}
        if limit:
            kwargs["Limit"] = limit - found
        for item in query_all(client, **kwargs):
            try:
                checked = untrusted.minute_item(item, device, sensor)
            except untrusted.BadItem as error:
                untrusted.skip("minutes", item, error, log)
                continue
            yield checked
            found += 1
            if limit and found >= limit:
                return


def latest_times(client, table, device):
    """{sensor: ts} of the device's `latest` items (see latest_key): one Query, whatever the age.
    An item that isn't one (written under the device's keys by anyone holding its credentials)
    is skipped with a log line: its `ts` must be a time from 2024 to a day ahead."""
    pk, _ = latest_key(device, "")
    found, latest_allowed = {}, utc_now() + dt.timedelta(days=1)
    for item in map(plain, query_all(client, TableName=table, KeyConditionExpression="pk = :pk",
                                     ExpressionAttributeValues={":pk": {"S": pk}})):
        try:
            sensor, ts = item["sensor"], dt.datetime.fromisoformat(item["ts"])
            if (item["sk"], ts.tzinfo is None) != (latest_key(device, sensor)[1], False) \
                    or not filebuffer.EARLIEST_PLAUSIBLE <= ts <= latest_allowed:
                raise ValueError("not a latest item")
        except (KeyError, TypeError, ValueError, OverflowError):
            log.warning("skipping a bad latest item %s %s", pk[:200], str(item.get("sk"))[:50])
            continue
        found[sensor] = ts
    return found


def newest_reading_from(client, table, device, sensor, latest, until=None):
    """The sensor's newest minute item (plain) from the hour of `latest` (its `latest` item's
    ts) to the end of the hour after it, and not after `until`: the flush moves `latest` on
    with each new hour, so the newest reading is there (the next hour, should the process have
    stopped between the readings' write and that of `latest`). One or two Queries."""
    start = latest.astimezone(dt.timezone.utc).replace(minute=0, second=0, microsecond=0)
    end = start + dt.timedelta(hours=1, minutes=59)
    if until is not None:
        end = min(end, until)
    if end < start:
        return None
    return next(iter(minute_range(client, table, device, sensor, start, end, newest_first=True, limit=1)), None)


def newest_item(client, table, partitions):
    """The newest item in the first non-empty partition of `partitions` (newest first)."""
    for pk in partitions:
        page = call(client.query, table, TableName=table, KeyConditionExpression="pk = :pk",
                    ExpressionAttributeValues={":pk": {"S": pk}}, ScanIndexForward=False, Limit=1)
        if page.get("Items"):
            return plain(page["Items"][0])
    return None


# --- CLI --------------------------------------------------------------------------------------

COMMON_KEYS = ("table_prefix", "buffer_dir", "log_dir")
POLICY_KEYS = ("device", "table_prefix", "s3_bucket", "s3_prefix", "sns_topic_arn")


def build_parser():
    parser = ArgumentParser(prog="dynamo.py", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    create = commands.add_parser("create-tables", help="create the tables (idempotent)")
    add_config_flags(create, COMMON_KEYS)
    flush_parser = commands.add_parser("flush", help="send the buffered readings")
    add_config_flags(flush_parser, ("device",) + COMMON_KEYS)
    release = commands.add_parser("release-held", help="move the held readings of the device whose time "
                                  "is plausible back into the buffer, then flush them")
    add_config_flags(release, ("device",) + COMMON_KEYS)
    flush_parser.add_argument("--time-budget", type=float, default=FLUSH_BUDGET_SECONDS,
                              metavar="SECONDS", help="stop sending after this long (default 40)")
    status = commands.add_parser("status", help="backlog, newest reading, newest aggregate")
    add_config_flags(status, ("device", "timezone") + COMMON_KEYS)
    policy = commands.add_parser("policy", help="print the least-privilege IAM policy of a device")
    add_config_flags(policy, POLICY_KEYS)
    policy.add_argument("--admin", action="store_true",
                        help="print the policy of an administrator's create-tables instead")
    policy.add_argument("--watchdog", action="store_true",
                        help="print the policy of the watchdog (watchdog.py) instead")
    return parser


KEYS_OF = {
    "create-tables": COMMON_KEYS + ("retention_days",),
    "flush": ("device",) + COMMON_KEYS + ("retention_days",),
    "release-held": ("device",) + COMMON_KEYS,
    "status": ("device", "watch", "timezone", "schedule_ics", "schedule_cache") + COMMON_KEYS,
    "policy": POLICY_KEYS,
}


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "policy":  # prints only: no logs, no AWS
        from policy import admin_policy_document, policy_document, watchdog_policy_document

        if args.admin:
            document = admin_policy_document(load_config(args, ("table_prefix",)))
        elif args.watchdog:
            config = load_config(args, ("table_prefix", "sns_topic_arn"))
            document = watchdog_policy_document(config, config["sns_topic_arn"])
        else:
            # the policy is usually written on a laptop for a Pi: this host's name would be wrong
            config = load_config(args, POLICY_KEYS, host_device=False)
            if config["device"] is None:
                raise ConfigError("policy needs the device it is for: pass --device NAME "
                                  "(or set device in config.toml or BLACKOUT_DEVICE)")
            document = policy_document(config, config["device"], config["s3_bucket"], config["s3_prefix"],
                                       config["sns_topic_arn"])
        print(json.dumps(document, indent=2))
        return EXIT_OK
    # flush alone holds another device's readings only when the device is set (config, env or
    # --device): this host's name is no sure sign of whose readings the buffer keeps
    config = load_config(args, KEYS_OF[args.command], host_device=args.command != "flush")
    setup_logging(config["log_dir"], "dynamo")
    if args.command == "create-tables":
        try:
            result = create_tables(config)
        except CloudUnreachable as error:
            raise JobFailed(f"DynamoDB unreachable: {error}") from None
        names = ", ".join(table_names(config["table_prefix"]).values())
        print(f"created {', '.join(result.created)}" if result.created else f"tables exist: {names}")
        if result.ttl_enabled:
            print(f"enabled TTL on {result.ttl_enabled}: minutes flushed with retention_days set expire "
                  f"{config['retention_days']} days after their minute; those stored before keep no ttl")
        return EXIT_OK
    if args.command == "flush":
        if not 0 < args.time_budget <= 86400:
            raise ConfigError(f"--time-budget must be from 0 to 86400 seconds, got {args.time_budget}")
        flush_and_report(config, args.time_budget)
        return EXIT_OK
    if args.command == "release-held":
        buffer = filebuffer.Buffer(config["buffer_dir"])
        try:
            with buffer.lock():
                released, kept = buffer.release_held(config["device"])
        except filebuffer.BufferLocked:
            raise JobFailed("a flush holds the buffer: try again in a minute") from None
        except (filebuffer.BufferError, OSError) as error:
            raise JobFailed(f"can't release the held readings in {buffer.held_dir}: {error}") from None
        print(f"released {released} held readings into {buffer.directory}; {len(kept)} still held")
        for name, reason in kept:
            print(f"  {name}: {reason}")
        if released:
            flush_and_report(config)
        return EXIT_OK
    if args.command == "status":
        from status import status_lines

        try:
            for line in status_lines(config):
                print(line)
        except CloudUnreachable as error:
            print(f"Error: DynamoDB unreachable: {error}", file=sys.stderr)
            return EXIT_FAILED
        except BrokenPipeError:
            raise
        except OSError as error:  # e.g. buffer_dir is a file
            raise JobFailed(f"can't read the buffer in {config['buffer_dir']}: {error}") from None
        return EXIT_OK
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(run_cli(main))
