"""`dynamo.py status`: what a device's Pi, its tables and the watchdog know, one line each.

Reads only: the buffer beside the scripts, the device's own partitions and the watchdog's state.
"""

import datetime as dt

import dynamo
import filebuffer
import untrusted
import utils
from dynamo import (
    day_key,
    day_start,
    day_zone,
    hour_key,
    latest_times,
    newest_item,
    newest_reading_from,
    plain,
    query_all,
    sensors_of,
    table_names,
)
from messages import clock_text, parse_iso, span_text, time_zone
from utils import utc_now
from watchdog_state import OUTBOX_DAYS, SKEW_TELL, load_watchdog_state

STATUS_MONTHS = 13  # how far back `status` looks for days items of another time zone
STATUS_WORKERS = 8  # months of days items read at once (aws_client's pool holds 10 connections)


def awaiting_hours(client, table, device, sensor):
    """The hours of the sensor whose new readings wait for the aggregator: their markers."""
    return set(dynamo.markers(client, table, device, sensor))


STATUS_HOURS_BACK = 72  # without a `latest` item (tables of an earlier version) status looks back this far
STATUS_DAYS_BACK = 2  # the newest aggregated hour: the days (UTC) up to the newest reading's, then the days items


def newest_reading(client, table, device, sensor, now, latest=None, hours_back=STATUS_HOURS_BACK):
    """The sensor's newest valid minute item (plain), or None. From its `latest` item, however old
    the reading is (two Queries at most); without one (a table written before the flush kept it),
    it looks back `hours_back` hours from `now`, one Query an hour. A bad item is skipped (untrusted)."""
    if latest is not None:
        item = newest_reading_from(client, table, device, sensor, latest)
        if item is not None:
            return item
    end = now.replace(minute=59, second=59)
    for item in dynamo.minute_range(client, table, device, sensor, end - dt.timedelta(hours=hours_back - 1, minutes=59),
                                    end, newest_first=True, limit=1):
        return item
    return None


def newest_readings(client, table, device, now, sensors=None):
    """{sensor: newest minute item or None} of every sensor of the device."""
    latest = latest_times(client, table, device)
    sensors = sensors if sensors is not None else sensors_of(client, table, device)
    return {sensor: newest_reading(client, table, device, sensor, now, latest.get(sensor)) for sensor in sensors}


def days_items(client, table, device, sensor, month, months_back=STATUS_MONTHS):
    """The plain days items of the `months_back` months up to the local `month`, oldest first
    (one Query a month, several at once: the client is thread-safe)."""
    from concurrent.futures import ThreadPoolExecutor

    months, month = [], month.replace(day=1)
    for _ in range(months_back):
        months.append(month)
        month = (month - dt.timedelta(days=1)).replace(day=1)

    def of_month(month):
        return list(map(plain, query_all(client, TableName=table, KeyConditionExpression="pk = :pk",
                                         ExpressionAttributeValues={":pk": {"S": day_key(device, sensor, month)[0]}})))

    with ThreadPoolExecutor(max_workers=STATUS_WORKERS) as pool:
        return [item for items in reversed(list(pool.map(of_month, months))) for item in items]


def newest_aggregated_hour(client, table, device, sensor, anchor, days=(), days_back=STATUS_DAYS_BACK):
    """The start (UTC) of the newest hours item at or before the UTC day of `anchor` (the newest
    reading): its day and the day before, then the UTC days of the newest days item."""
    dates = [anchor - dt.timedelta(days=d) for d in range(days_back)]
    if days:
        newest_day = max(day_start(item) for item in days)
        if newest_day.date() < dates[-1].date():
            dates += [newest_day + dt.timedelta(hours=26), newest_day]
    partitions = dict.fromkeys(hour_key(device, sensor, date)[0] for date in dates)
    item = newest_item(client, table, partitions)
    if item is None:
        return None
    try:
        return untrusted.period_item(item, device, sensor, "hours")
    except untrusted.BadItem as error:
        untrusted.skip("hours", item, error)
        return None


def days_in_other_zones(items, device, sensor, zone_name):
    """[(date, tz)] of the days items not in `zone_name` (a bad one is skipped: untrusted)."""
    other = []
    for item in items:
        try:
            day = untrusted.period_item(item, device, sensor, "days").date()
        except untrusted.BadItem as error:
            untrusted.skip("days", item, error)
            continue
        if day_zone(item) != zone_name:
            other.append((day, day_zone(item)))
    return sorted(other)


def counted(number, noun):
    """'1 reading', '2 readings'."""
    return f"{number} {noun}{'' if number == 1 else 's'}"


def status_lines(config, client=None, now=None):
    """What `dynamo.py status` prints: the buffer, then each sensor of the device."""
    now = now or utc_now()
    skipped_before = untrusted.skipped_count()
    client = client or dynamo.aws_client()  # looked up here: tests put a strict client in its place  # a configuration error first, before any line
    buffer = filebuffer.Buffer(config["buffer_dir"])
    pending = buffer.pending()
    oldest = ""
    if pending:
        reading = buffer.load(pending[0])
        oldest = f", oldest {clock_text(reading.ts, time_zone(config.get('timezone')))}" if reading else ""
    yield (f"buffer {buffer.directory}: {counted(len(pending), 'reading')} waiting to be flushed{oldest}; "
           f"{buffer.count('held')} held (clock or device name), {buffer.count('bad')} bad")
    import link

    down = link.status_line(config["buffer_dir"], now)
    if down:
        yield down
    import notify  # the pins' power state and the notification queue live beside the buffer

    yield from notify.status_lines(config["buffer_dir"], config.get("device"), now, time_zone(config.get("timezone")))
    if config.get("schedule_ics"):
        import schedule  # a feed that failed: the last good copy is used, and how old it is

        yield from schedule.status_lines(config, now, time_zone(config.get("timezone")))
    names = table_names(config["table_prefix"])
    device = config["device"]
    zone = time_zone(config.get("timezone"))
    sensors = sensors_of(client, names["minutes"], device)
    if not sensors:
        yield f"device {device}: no readings stored in {names['minutes']} yet"
    hour_under_way = now.replace(minute=0, second=0, microsecond=0)
    newest_of = newest_readings(client, names["minutes"], device, now, sensors)
    for sensor in sensors:
        # each part says what it found however old (a demo's or a replay's days are long past)
        newest = newest_of[sensor]
        newest_text = (f"newest reading {clock_text(parse_iso(newest['ts']), zone)}" if newest
                       else f"no reading in the last {STATUS_HOURS_BACK} hours")
        anchor = parse_iso(newest["ts"]) if newest else now
        days = days_items(client, names["days"], device, sensor, anchor.astimezone(zone or dt.timezone.utc).date())
        hour = newest_aggregated_hour(client, names["hours"], device, sensor, anchor, days)
        hour_text = f"newest aggregated hour {clock_text(hour, zone)}" if hour else "no hour aggregated yet"
        waiting = awaiting_hours(client, names["minutes"], device, sensor)
        waiting_text = f"{counted(len(waiting), 'hour')} awaiting aggregation"
        if hour_under_way in waiting:
            waiting_text += " (the hour under way among them, which the first run after it ends aggregates)"
        yield f"device {device} sensor {sensor}: {newest_text}; {waiting_text}; {hour_text}"
        zone_name = utils.zone(config.get("timezone")).key
        other = days_in_other_zones(days, device, sensor, zone_name)
        if other:
            zones = ", ".join(sorted({tz for _day, tz in other}))
            yield (f"device {device} sensor {sensor}: {len(other)} days items in another time zone ({zones}) "
                   f"than timezone {zone_name}, {other[0][0]} to {other[-1][0]}; recompute them with "
                   f"aggregate.py --rebuild-days --from {other[0][0]} --to {other[-1][0]}")
    for watched in config.get("watch") or [device]:
        yield watchdog_status_line(client, names["minutes"], watched, now, zone,
                                   newest_of if watched == device else None)
    skipped = untrusted.skipped_count() - skipped_before
    if skipped:
        yield f"bad items: {counted(skipped, 'item')} skipped (not what their key says; each named in the log)"


def watchdog_status_line(client, table, device, now, zone=None, newest_of=None):
    """What the watchdog knows of `device`, one line: its last word, silent or not (times in `zone`)."""
    if newest_of is None:
        newest_of = newest_readings(client, table, device, now)
    newest = [parse_iso(item["ts"]) for item in newest_of.values() if item]
    last_word = (f"last word {clock_text(max(newest), zone)}" if newest
                 else f"no reading in the last {STATUS_HOURS_BACK} hours")
    state = load_watchdog_state(client, table, device)
    if state is None:
        return f"watchdog: {device}: {last_word}; nothing recorded (not watched yet, or never silent)"
    phase = state.get("phase")
    if phase == "unseen":
        if newest:  # readings came after the watchdog's last run, or it looked only so far back
            return f"watchdog: {device}: {last_word}; the watchdog had found no reading when it last ran"
        return f"watchdog: {device}: has never sent a reading"
    since = state.get("silent_since")
    since_text = clock_text(parse_iso(since), zone) if since else None
    if phase == "silent":
        line = f"watchdog: {device}: SILENT since {since_text} (announced)"
    elif phase == "resumed":
        line = (f"watchdog: {device}: {last_word}; back after a silence from {since_text}, "
                "waiting for its buffered readings to tell the cause")
    else:
        back = state.get("back_ts")
        line = f"watchdog: {device}: {last_word}; not silent" + (
            f" (last silence {span_text(parse_iso(since), parse_iso(back), zone)})" if since and back else "")
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
