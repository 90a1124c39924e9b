"""`dynamo.py status`: what a device's Pi, its tables and the watchdog know, one line each.

Reads only: the buffer beside the scripts, the device's own partitions and the watchdog's state.
"""

import datetime as dt

import dynamo
import filebuffer
import utils
from dynamo import (
    INDEX_NAME,
    call,
    day_key,
    day_zone,
    format_ts,
    hour_key,
    minute_key,
    newest_item,
    parse_partition,
    plain,
    query_all,
    sensors_of,
    sk_number,
    status_key,
    table_names,
)
from utils import utc_now
from watchdog_state import OUTBOX_DAYS, SKEW_TELL, load_watchdog_state

STATUS_MONTHS = 13  # how far back `status` looks for days items of another time zone
def count_awaiting(client, table, device, sensor, since=None):
    """How many minute items of the sensor wait for the aggregator (from `since` on, if given)."""
    total, kwargs = 0, {
        "TableName": table, "IndexName": INDEX_NAME, "Select": "COUNT",
        "KeyConditionExpression": "pk_status = :s",
        "ExpressionAttributeValues": {":s": {"S": status_key(device, sensor)}},
    }
    if since is not None:
        kwargs["KeyConditionExpression"] += " AND ts >= :since"
        kwargs["ExpressionAttributeValues"][":since"] = {"S": format_ts(since)}
    while True:
        page = call(client.query, table, **kwargs)
        total += page.get("Count", 0)
        if "LastEvaluatedKey" not in page:
            return total
        kwargs["ExclusiveStartKey"] = page["LastEvaluatedKey"]


STATUS_HOURS_BACK = 72  # status looks for the newest reading this far back (one query an hour)
STATUS_DAYS_BACK = 62  # and for the newest aggregated hour this far back (one query a day)


def newest_reading(client, table, device, sensor, now, hours_back=STATUS_HOURS_BACK):
    partitions = (minute_key(device, sensor, now - dt.timedelta(hours=h))[0] for h in range(hours_back))
    return newest_item(client, table, partitions)


def newest_aggregated_hour(client, table, device, sensor, now, days_back=STATUS_DAYS_BACK):
    partitions = (hour_key(device, sensor, now - dt.timedelta(days=d))[0] for d in range(days_back))
    item = newest_item(client, table, partitions)
    if item is None:
        return None
    _device, _sensor, day = parse_partition(item["pk"])
    return day + dt.timedelta(hours=sk_number(item["sk"]))


def days_in_other_zones(client, table, device, sensor, zone_name, today, months_back=STATUS_MONTHS):
    """[(date, tz)] of the days items of the last `months_back` months not in `zone_name`."""
    other, month = [], today.replace(day=1)
    for _ in range(months_back):
        pk, _sk = day_key(device, sensor, month)
        for item in map(plain, query_all(client, TableName=table, KeyConditionExpression="pk = :pk",
                                         ExpressionAttributeValues={":pk": {"S": pk}})):
            if day_zone(item) != zone_name:
                other.append((month.replace(day=sk_number(item["sk"])), day_zone(item)))
        month = (month - dt.timedelta(days=1)).replace(day=1)
    return sorted(other)


def counted(number, noun):
    """'1 reading', '2 readings'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def status_lines(config, client=None, now=None):
    """What `dynamo.py status` prints: the buffer, then each sensor of the device."""
    now = now or utc_now()
    client = client or dynamo.aws_client()  # looked up here: tests put a strict client in its place  # a configuration error first, before any line
    buffer = filebuffer.Buffer(config["buffer_dir"])
    pending = buffer.pending()
    oldest = ""
    if pending:
        reading = buffer.load(pending[0])
        oldest = f", oldest {reading.ts:%Y-%m-%d %H:%M} UTC" if reading else ""
    yield (f"buffer {buffer.directory}: {counted(len(pending), 'reading')} waiting to be flushed{oldest}; "
           f"{buffer.count('held')} held (clock), {buffer.count('bad')} bad")
    import link

    down = link.status_line(config["buffer_dir"], now)
    if down:
        yield down
    import notify  # the pins' power state and the notification queue live beside the buffer

    yield from notify.status_lines(config["buffer_dir"], config.get("device"), now)
    names = table_names(config["table_prefix"])
    device = config["device"]
    sensors = sensors_of(client, names["minutes"], device)
    if not sensors:
        yield f"device {device}: no readings stored in {names['minutes']} yet"
    hour_under_way = now.replace(minute=0, second=0, microsecond=0)
    for sensor in sensors:
        # each part says how far it looked: "none" alone read as "nothing was ever aggregated"
        # when the history is simply older than the window (simulated --at days, say)
        newest = newest_reading(client, names["minutes"], device, sensor, now)
        newest_text = (f"newest reading {dt.datetime.fromisoformat(newest['ts']):%Y-%m-%d %H:%M} UTC" if newest
                       else f"no reading in the last {STATUS_HOURS_BACK} hours")
        hour = newest_aggregated_hour(client, names["hours"], device, sensor, now)
        hour_text = (f"newest aggregated hour {hour:%Y-%m-%d %H}:00 UTC" if hour
                     else f"no hour aggregated in the last {STATUS_DAYS_BACK} days")
        waiting = count_awaiting(client, names["minutes"], device, sensor)
        waiting_text = f"{counted(waiting, 'minute')} awaiting aggregation"
        current = count_awaiting(client, names["minutes"], device, sensor, since=hour_under_way) if waiting else 0
        if current:
            waiting_text += (f" ({current} in the hour under way, which the first run after "
                             "it ends aggregates)")
        yield f"device {device} sensor {sensor}: {newest_text}; {waiting_text}; {hour_text}"
        zone = utils.zone(config.get("timezone"))
        other = days_in_other_zones(client, names["days"], device, sensor, zone.key, now.astimezone(zone).date())
        if other:
            zones = ", ".join(sorted({tz for _day, tz in other}))
            yield (f"device {device} sensor {sensor}: {len(other)} days items in another time zone ({zones}) "
                   f"than timezone {zone.key}, {other[0][0]} to {other[-1][0]}; recompute them with "
                   f"aggregate.py --rebuild-days --from {other[0][0]} --to {other[-1][0]}")
    for watched in config.get("watch") or [device]:
        yield watchdog_status_line(client, names["minutes"], watched, now)


def watchdog_status_line(client, table, device, now):
    """What the watchdog knows of `device`, one line: its last word, silent or not."""
    newest = [newest_reading(client, table, device, sensor, now) for sensor in sensors_of(client, table, device)]
    newest = [item["ts"] for item in newest if item]
    last_word = f"last word {max(newest)}" if newest else "no reading in the last 72 hours"
    state = load_watchdog_state(client, table, device)
    if state is None:
        return f"watchdog: {device}: {last_word}; nothing recorded (not watched yet, or never silent)"
    phase = state.get("phase")
    if phase == "unseen":
        return f"watchdog: {device}: has never sent a reading"
    since = state.get("silent_since")
    if phase == "silent":
        line = f"watchdog: {device}: SILENT since {since} (announced)"
    elif phase == "resumed":
        line = (f"watchdog: {device}: {last_word}; back after a silence from {since}, "
                "waiting for its buffered readings to tell the cause")
    else:
        line = f"watchdog: {device}: {last_word}; not silent" + (
            f" (last silence {since} to {state.get('back_ts')})" if since else "")
    skew = float(state.get("skew_seconds") or 0)
    if abs(skew) > SKEW_TELL.total_seconds():
        line += (f"; its clock is {round(abs(skew) / 60)} min {'ahead' if skew > 0 else 'behind'} "
                 "(the watchdog corrects its times; check the Pi's NTP)")
    pending = len(state.get("outbox") or [])
    if pending:
        line += f"; {pending} announcement(s) not yet delivered to every channel"
    if state.get("dropped"):
        line += (f"; {state['dropped']} announcement(s) dropped undelivered after {OUTBOX_DAYS} days "
                 f"(the last at {state.get('dropped_at')})")
    return line
