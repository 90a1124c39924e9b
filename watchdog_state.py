"""The watchdog's state of each device, kept in the minutes table under its own key.

Read and written by watchdog.py; read (never written) by the Pi, whose policy allows a Query of
its own device's state, and by `dynamo.py status`.
"""

import datetime as dt
import json
import random
import time

from dynamo import (
    BACKOFF_BASE_SECONDS,
    BACKOFF_CAP_SECONDS,
    CloudUnreachable,
    call,
    classify,
    number,
    watchdog_key,
)

# Attributes of the state item, besides pk, sk: device, phase (watching, silent, resumed,
# unseen), version (each write adds 1 and is conditional on the one read), silent_since (the
# last reading before the silence), silent_announced, resumed_at (when the watchdog saw
# readings again), back_ts (the newest reading then), last_word, outbox (JSON: announcements
# not yet delivered to every channel), lease_owner and lease_until (the run delivering them),
# told (JSON: the channels, by channels.channel_id, that acknowledged the last silence's
# messages; the Pi reads it), dropped (announcements that expired undelivered, all told) and
# dropped_at (the last time one did); seen_ts and seen_at (the newest reading and when the
# watchdog first saw it, kept only while its stamp and the watchdog's clock disagree),
# skew_seconds (the estimated skew of the Pi's clock) and skew_told (the skew last told).
WATCHDOG_ATTRIBUTES = ("device", "phase", "version", "silent_since", "silent_announced", "resumed_at",
                       "back_ts", "last_word", "outbox", "lease_owner", "lease_until", "sensors",
                       "told", "dropped", "dropped_at", "seen_ts", "seen_at", "skew_seconds", "skew_told")
JSON_ATTRIBUTES = {"outbox": list, "told": dict}
OUTBOX_DAYS = 3      # an announcement no channel could take for this long is dropped (watchdog.bound_outbox)...
OUTBOX_LIMIT = 100   # ...and so are the oldest beyond this many: the item stays far below DynamoDB's 400 KB
SKEW_TELL = dt.timedelta(minutes=3)  # a Pi clock off by more is told once (watchdog) and shown by `status`
BATCH_GET_LIMIT = 100  # BatchGetItem's documented maximum of keys


def _watchdog_state(item):
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    state = {name: deserialize(value) for name, value in item.items() if name in WATCHDOG_ATTRIBUTES}
    state["version"] = int(state.get("version", 0))
    state["dropped"] = int(state.get("dropped", 0))
    for name, kind in JSON_ATTRIBUTES.items():
        value = json.loads(state.get(name) or "null")
        state[name] = value if isinstance(value, kind) else kind()
    if "sensors" in state:
        state["sensors"] = list(state["sensors"])
    return state


def load_watchdog_state(client, table, device):
    """The watchdog's state of `device` as a plain dict (outbox decoded), or None.

    A strongly consistent Query (not GetItem: a device's policy allows Query on its key).
    """
    pk, sk = watchdog_key(device)
    page = call(client.query, table, TableName=table, ConsistentRead=True,
                KeyConditionExpression="pk = :pk AND sk = :sk",
                ExpressionAttributeValues={":pk": {"S": pk}, ":sk": {"S": sk}})
    return _watchdog_state(page["Items"][0]) if page.get("Items") else None


def load_watchdog_states(client, table, devices, sleep=time.sleep):
    """{device: state or None} of many devices: strongly consistent BatchGetItem, 100 keys a
    request, unprocessed keys asked again with backoff."""
    states = dict.fromkeys(devices)
    for start in range(0, len(devices), BATCH_GET_LIMIT):
        keys = [dict(zip(("pk", "sk"), ({"S": part} for part in watchdog_key(device))))
                for device in devices[start:start + BATCH_GET_LIMIT]]
        request, attempt = {table: {"Keys": keys, "ConsistentRead": True}}, 0
        while request:
            answer = call(client.batch_get_item, table, RequestItems=request)
            for item in answer.get("Responses", {}).get(table, []):
                state = _watchdog_state(item)
                states[state["device"]] = state
            request = {name: left for name, left in answer.get("UnprocessedKeys", {}).items() if left.get("Keys")}
            if request:
                attempt += 1
                if attempt > 8:
                    raise CloudUnreachable("DynamoDB kept watchdog states unprocessed")
                sleep(random.uniform(0, min(BACKOFF_CAP_SECONDS, BACKOFF_BASE_SECONDS * 2 ** attempt)))
    return states


def save_watchdog_state(client, table, state, expected_version):
    """Write the state if nobody wrote it since `expected_version` was read (0: no item yet).

    Returns False when another run got there first (the caller reads again); the new state
    carries version expected_version + 1.
    """
    from boto3.dynamodb.types import TypeSerializer
    from botocore.exceptions import ClientError

    pk, sk = watchdog_key(state["device"])
    document = {name: state[name] for name in WATCHDOG_ATTRIBUTES if state.get(name) is not None}
    document.update({name: json.dumps(state.get(name) or kind(), sort_keys=True) for name, kind in JSON_ATTRIBUTES.items()})
    document.update(version=expected_version + 1)
    serialize = TypeSerializer().serialize
    item = {"pk": {"S": pk}, "sk": {"S": sk}, **{name: serialize(value) for name, value in document.items()}}
    if expected_version:
        condition = {"ConditionExpression": "version = :v", "ExpressionAttributeValues": {":v": number(expected_version)}}
    else:
        condition = {"ConditionExpression": "attribute_not_exists(pk)"}
    try:
        client.put_item(TableName=table, Item=item, **condition)
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") == "ConditionalCheckFailedException":
            return False
        raise classify(error, table) from None
    except Exception as error:
        raise classify(error, table) from None
    state["version"] = expected_version + 1
    return True


class Told:
    """What the watchdog told of the last silence it announced: its window and, per event,
    the channels (channels.channel_id) that acknowledged the message."""

    def __init__(self, since, until, silent, back):
        self.since, self.until = since, until      # datetimes; until None while the silence lasts
        self.silent, self.back = frozenset(silent), frozenset(back)

    def covers(self, at):
        return self.since <= at and (self.until is None or at <= self.until)

    def __eq__(self, other):
        return isinstance(other, Told) and vars(self) == vars(other)

    def __repr__(self):
        return f"Told({self.since}, {self.until}, silent={sorted(self.silent)}, back={sorted(self.back)})"


def record_told(state, message, channel_key, at):
    """Note in `state` that `channel_key` acknowledged the watchdog `message` (silent or back).

    Kept for the newest silence only: the Pi drops a queued power message of that silence on
    a channel only when the watchdog's story of it was delivered there (Told.back)."""
    told = state.get("told") or {}
    if told.get("silent_since") != message["silent_since"]:
        if told.get("silent_since") and message["silent_since"] < told["silent_since"]:
            return  # a late delivery of an older silence's message: the newer record stays
        told = {"silent_since": message["silent_since"], "silent": {}, "back": {}}
    if message["event"] == "back":
        told["back_ts"] = message["at"]
    told.setdefault(message["event"], {})[channel_key] = at
    state["told"] = told


def told_of(state):
    """The Told of a state item (see record_told), or None when nothing was delivered."""
    told = (state or {}).get("told") or {}
    if not told.get("silent_since"):
        return None
    back = told.get("back_ts")
    if not back and state.get("phase") != "silent" and state.get("silent_since") == told["silent_since"]:
        back = state.get("back_ts")  # the silence is over, its story not yet delivered anywhere
    return Told(dt.datetime.fromisoformat(told["silent_since"]), dt.datetime.fromisoformat(back) if back else None,
                told.get("silent") or {}, told.get("back") or {})


def watchdog_outage(client, table, device):
    """What the watchdog told of the last silence of `device` it announced (a Told), or None.

    The Pi asks this before sending power messages that waited in its queue: on a channel
    where the watchdog's story of that silence was delivered, the Pi's own messages of it are
    dropped; everywhere else they are sent.
    """
    return told_of(load_watchdog_state(client, table, device))
