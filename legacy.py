"""Upgrade in place: tables made before markers of new hours, whose new items sit in status-index.

The first aggregation on such tables turns what their status-index still holds for the device
into markers (minutes table: the flush's markers of new hours; hours table: the aggregator's
markers of hours whose day is not over), then removes `pk_status` from those items with a
conditional UpdateItem (only if the item's `ts` is the one read: a newer reading of that minute
carries no `pk_status` and is left alone), so they leave the index and are not found again.
Only the device's own keys are written: an index entry whose item belongs to another device or
sensor is skipped with a log line. Once a table is seen without the index, or upgraded, the
buffer directory remembers it, so later runs pay nothing for this.
"""

import json
import logging

import dynamo
import filebuffer
import untrusted

log = logging.getLogger("aggregate")

UPGRADED_FILE = ".upgraded.json"


def _upgraded(directory):
    try:
        return set(json.loads((directory / UPGRADED_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return set()


def own_entry(item, device, sensor, table_kind):
    """The period start of an index entry if its item is the device's sensor's minute (minutes
    table) or hour (hours table), else None: pk_status is written by whoever wrote the item
    (untrusted.index_item checks that its key names the same device and sensor)."""
    try:
        pk, sk = untrusted.index_item(item, device, sensor)
        if pk.rsplit("#", 1)[1].count("-") + 1 != {"minutes": 4, "hours": 3}[table_kind] or not item["ts"]["S"]:
            return None
        return dynamo.period_start(pk, sk)
    except (untrusted.BadItem, KeyError, TypeError, ValueError, AttributeError, IndexError):
        return None


def upgrade(client, tables, device, all_sensors, buffer_dir=None):
    """Turn the device's status-index entries into markers, once per table; returns how many
    hours were marked. Tables without the index (made by this version) are only remembered.
    `all_sensors()` gives every sensor of the device (a narrowed run upgrades them all)."""
    directory = filebuffer.Buffer(buffer_dir).directory if buffer_dir else None
    done = _upgraded(directory) if directory else set()
    marked = 0
    for kind in ("minutes", "hours"):
        table = tables[kind]
        place = dynamo.table_place(client, table)
        if place in done:
            continue
        description = dynamo.call(client.describe_table, table, TableName=table)["Table"]
        if dynamo.has_legacy_index(description):
            marked += _upgrade_table(client, table, kind, device, all_sensors())
        done.add(place)
        if directory:
            directory.mkdir(parents=True, exist_ok=True)
            filebuffer.write_atomically(directory, UPGRADED_FILE, json.dumps(sorted(done)))
    return marked


def _upgrade_table(client, table, kind, device, sensors):
    marked = 0
    for sensor in sensors:
        entries = list(dynamo.query_all(
            client, TableName=table, IndexName=dynamo.INDEX_NAME, KeyConditionExpression="pk_status = :s",
            ExpressionAttributeValues={":s": {"S": dynamo.status_key(device, sensor)}}))
        own, hours = [], set()
        for item in entries:
            start = own_entry(item, device, sensor, kind)
            if start is None:
                log.warning("skipping a status-index entry that is not %s's sensor %s: %s %s", device, sensor,
                            str(item.get("pk", {}).get("S"))[:200], str(item.get("sk", {}).get("S"))[:50])
                continue
            own.append(item)
            hours.add(start.replace(minute=0, second=0, microsecond=0))
        # the markers first: a crash before pk_status is removed leaves the entries to find again
        now = dynamo.utc_now()
        dynamo.put_all(client, [(table, dynamo.marker_item(device, sensor, hour, now)) for hour in sorted(hours)])
        for item in own:
            _remove_status(client, table, item)
        marked += len(hours)
        if own:
            log.info("upgrade: %s sensor %s: %d items of %s in status-index became %d markers",
                     device, sensor, len(own), table, len(hours))
    return marked


def _remove_status(client, table, item):
    """REMOVE pk_status from an item whose ts is still the one the index showed."""
    from botocore.exceptions import ClientError

    try:
        client.update_item(TableName=table, Key={"pk": item["pk"], "sk": item["sk"]},
                           UpdateExpression="REMOVE pk_status", ConditionExpression="#ts = :ts",
                           ExpressionAttributeNames={"#ts": "ts"}, ExpressionAttributeValues={":ts": item["ts"]})
    except ClientError as error:
        if error.response.get("Error", {}).get("Code") != "ConditionalCheckFailedException":
            raise dynamo.classify(error, table) from None
