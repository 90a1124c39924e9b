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
# not yet delivered to every channel), lease_owner and lease_until (the run delivering them).
WATCHDOG_ATTRIBUTES = ("device", "phase", "version", "silent_since", "silent_announced", "resumed_at",
                       "back_ts", "last_word", "outbox", "lease_owner", "lease_until", "sensors")
BATCH_GET_LIMIT = 100  # BatchGetItem's documented maximum of keys


def _watchdog_state(item):
    from boto3.dynamodb.types import TypeDeserializer

    deserialize = TypeDeserializer().deserialize
    state = {name: deserialize(value) for name, value in item.items() if name in WATCHDOG_ATTRIBUTES}
    state["version"] = int(state.get("version", 0))
    state["outbox"] = json.loads(state.get("outbox") or "[]")
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
    document.update(version=expected_version + 1, outbox=json.dumps(state.get("outbox") or [], sort_keys=True))
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


def watchdog_outage(client, table, device):
    """(silent_since, back_ts) of the silence the watchdog last announced for `device`, as
    datetimes (back_ts None while it lasts); None when it announced none.

    The Pi asks this before sending messages that waited in its queue: what the watchdog
    already told (one story per outage) stays quiet.
    """
    state = load_watchdog_state(client, table, device)
    if not state or not state.get("silent_announced") or not state.get("silent_since"):
        return None
    back = state.get("back_ts")
    return (dt.datetime.fromisoformat(state["silent_since"]),
            dt.datetime.fromisoformat(back) if back and state.get("phase") != "silent" else None)
