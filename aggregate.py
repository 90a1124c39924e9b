"""Hourly job: recompute the hours and days that new minute readings touch; mirror to Parquet.

    python aggregate.py --device alex_rpi                 # every sensor the device recorded
    python aggregate.py --device alex_rpi --sensor 4      # just pin 4
    python aggregate.py --device alex_rpi --export-from 2025-06-01 --export-to 2025-06-30
    python aggregate.py --device alex_rpi --rebuild --from 2025-06-01 --to 2025-06-30

    python aggregate.py --device alex_rpi --rebuild-days --from 2025-03-01 --to 2025-06-30

Work is found through the markers of new hours the flush writes (one paginated query of the
sensor's marker partition, never a Scan or an index); each touched hour is recomputed from all
of its minute items and each touched day from its hours, so reruns and late readings converge
on the same items. Then each marker is deleted if the flush has not written it again since it
was read (a conditional delete), once its hour has been over for 3 minutes. No minute item is
rewritten, so the aggregation holds no lock that the minute's flush waits on. The hours table
keeps the aggregator's own markers of the hours whose local day is not over yet.

Hours are UTC hours; a day is the user's calendar day in `timezone` (23, 24 or 25 hours).
In a zone whose offset is not whole hours (+05:30, +05:45) a day begins and ends inside a UTC
hour: those edge pieces are computed from their minutes. `--rebuild-days` recomputes the days
of a range of local dates after `timezone` changed.
"""

import datetime as dt
import json
import logging
import sys
from dataclasses import dataclass, field

import aggregation
import dynamo
import filebuffer
import legacy
import schedule
import untrusted
from aggregation import DAY, HOUR, MINUTE, ON, OFF
from utils import (
    EXIT_OK,
    ArgumentParser,
    ConfigError,
    NOT_MAILED,
    JobFailed,
    add_config_flags,
    check_time_bounds,
    load_config,
    run_cli,
    setup_logging,
    shown,
    utc_now,
    zone as make_zone,
)

log = logging.getLogger("aggregate")

KEYS = ("device", "table_prefix", "buffer_dir", "log_dir", "s3_bucket", "s3_prefix", "parquet_dir", "timezone",
        "schedule_ics", "schedule_possible", "schedule_cache")
LOCK_NAME = ".aggregate.lock"
MIRROR_PENDING = ".mirror-pending.json"
# An OFF run is followed this far from new readings, back and forward, to measure it whole;
# the reading before an hour (whose first reading may start an outage) is looked for as far back.
MAX_WALK = dt.timedelta(days=7)
# Markers stay until their hour (minutes) or day (hours) has been over this long, so the
# run after a period ends recomputes it whole, readings that were still on their way included.
SETTLE = dt.timedelta(minutes=3)
HOURLY_READ_TIMEOUT_SECONDS = 30
PROGRESS_EVERY_HOURS = 24
# A rebuild longer than this asks for --allow-long-rebuild: it reads and writes for a long time
# (a typo such as --from 0025-01-01 is refused outright: before 2024). --rebuild reads every
# minute (about six months); --rebuild-days only hours (13 months: what `status` may suggest).
MAX_REBUILD_DAYS = {"--rebuild": 186, "--rebuild-days": 400}


class AggregationBusy(Exception):
    """Another aggregation holds the lock."""


@dataclass
class AggregateResult:
    hours: int = 0  # hours items written
    days: int = 0  # days items written
    consumed: int = 0  # markers of new hours deleted (minutes and hours tables)
    recomputed_hours: int = 0  # hours and days computed, whether or not their items changed
    recomputed_days: int = 0
    touched: dict = field(default_factory=dict)  # sensor -> {UTC date} whose partitions changed


def hour_of(ts):
    return ts.replace(minute=0, second=0, microsecond=0)


def day_of(ts):
    return ts.replace(hour=0, minute=0, second=0, microsecond=0)


class SensorHistory:
    """One sensor's minute items and hour statistics, each partition read at most once."""

    def __init__(self, client, tables, device, sensor, zone=None):
        self.client, self.tables, self.device, self.sensor = client, tables, device, sensor
        self.zone = zone or make_zone()
        self.pin = aggregation.is_pin(sensor)
        # Trust days items to tell which UTC days hold hours; not while they may be another zone's.
        self.days_items_current = True
        self.new_hours = set()  # hours with a marker of new readings
        self.computed = {}  # hour -> statistics computed in this run
        self._minutes = {}  # hour -> [raw minute items] in minute order
        self._hours = {}  # day -> {hour: statistics} as stored in the hours table
        self._days = {}  # month -> {days with a days item}
        self.new_days = set()  # days with hours items marked in the hours table (day not over)
        self.new_hour_days = set()  # days of new_hours
        self.schedule = None  # schedule.Snapshot of the published schedule, when one is configured
        self.open_runs = set()  # OFF runs not ended by an ON reading yet (see pin_runs)

    def windows_for(self, start, end, stored, period_end=None):
        """The schedule's windows of [start, end) for a period's statistics, None without a schedule.

        A period stored after it ended (at `period_end`, else `end`) keeps the windows it
        stored (schedules change: a recomputation gives the same answer); otherwise the current
        copy's, when every source has one (else its windows would count as unscheduled), else
        the stored ones if any.
        """
        if self.schedule is None or not self.pin:
            return None
        kept = schedule.stored_windows(stored)
        if kept is not None and stored.get("ts", "") >= dynamo.format_ts(period_end or end):
            return kept
        found = self.schedule.windows(start, end) if self.schedule.complete else None
        return found if found is not None else kept

    def _query(self, table, pk):
        return dynamo.query_all(self.client, TableName=table, ConsistentRead=True,
                                KeyConditionExpression="pk = :pk",
                                ExpressionAttributeValues={":pk": {"S": pk}})

    def minute_items(self, hour):
        if hour not in self._minutes:
            pk, _sk = dynamo.minute_key(self.device, self.sensor, hour)
            self._minutes[hour] = sorted(self._query(self.tables["minutes"], pk),
                                         key=lambda item: item["sk"]["S"])
        return self._minutes[hour]

    def readings(self, hour):
        """The hour's (minute, value) pin readings or (minute, {quantity: value}) BME280 readings."""
        readings = []
        for values in untrusted.checked(self.minute_items(hour), untrusted.minute_item, "minutes",
                                        self.device, self.sensor):
            minute = dynamo.period_start(values["pk"], values["sk"])
            if self.pin:
                if values.get("reading") in (ON, OFF):
                    readings.append((minute, values["reading"]))
            else:
                readings.append((minute, {q: values[q] for q in filebuffer.BME280_QUANTITIES if q in values}))
        return readings

    def hours_of_day(self, day):
        """{hour: statistics} of the day's hours with readings, this run's results first."""
        if day not in self._hours:
            pk, _sk = dynamo.hour_key(self.device, self.sensor, day)
            self._hours[day] = {
                dynamo.period_start(stats["pk"], stats["sk"]): stats
                for stats in map(dynamo.plain, self._query(self.tables["hours"], pk))
            }
        stored = dict(self._hours[day])
        stored.update({hour: stats for hour, stats in self.computed.items() if day_of(hour) == day})
        return {hour: stats for hour, stats in stored.items() if stats.get("count")}

    def days_with_items(self, month):
        """{local date: statistics} of the days items of a local month (a date on its 1st)."""
        if month not in self._days:
            pk, _sk = dynamo.day_key(self.device, self.sensor, month)
            self._days[month] = {dynamo.period_start(stats["pk"], stats["sk"]).date(): stats
                                 for stats in map(dynamo.plain, self._query(self.tables["days"], pk))}
        return self._days[month]

    def stored_day(self, day):
        return self.days_with_items(day.replace(day=1)).get(day)

    def hour_stats(self, hour):
        """Statistics of a whole hour with readings (this run's, else stored), or None."""
        return self.hours_of_day(day_of(hour)).get(hour)

    def stored_hour(self, hour):
        self.hours_of_day(day_of(hour))
        return self._hours[day_of(hour)].get(hour)

    def has_readings(self, hour):
        """Whether the hour holds readings, known without reading its minutes if possible.

        Every hour with readings has an hours item or a marker (new ones flushed during
        this run are taken by the next), and every day with hours items a days item or
        marked hours: a month of empty days costs one query.
        """
        if hour in self.new_hours:
            return True
        day = day_of(hour)
        known = (not self.days_items_current or day in self.new_days or day in self.new_hour_days
                 or any(local in self.days_with_items(local.replace(day=1))  # the local days it overlaps
                        for local in aggregation.local_dates(day, day + DAY, self.zone)))
        return known and hour in self.hours_of_day(day)

    def walk(self, hour, step, bound):
        """Hours with readings from hour+step towards `bound`, up to the first holding ON."""
        current = hour + step
        while (current <= bound) if step > dt.timedelta(0) else (current >= bound):
            if self.has_readings(current):
                readings = self.readings(current)
                if readings:
                    yield current, readings
                    if any(value == ON for _minute, value in readings):
                        return
            current += step

    def previous_value(self, hour):
        """The value of the last reading before `hour`, looked up as far back as the OFF-run
        walk goes (None if there is none): the first hour the walk back reads holds it."""
        for _earlier, readings in self.walk(hour, -HOUR, hour - MAX_WALK):
            return readings[-1][1]
        return None


def run_hours(history, hour, now_hour):
    """The hours whose statistics a change in `hour` can alter: those holding an OFF run that
    reaches `hour` (followed back and forward to an ON reading, at most MAX_WALK), and the
    next hour with readings if its first reading is OFF (it compares that reading with the last
    one before it, however many empty hours lie between, up to MAX_WALK)."""
    hours = set()
    for step, bound, edge in ((-HOUR, hour - MAX_WALK, -1), (HOUR, min(now_hour, hour + MAX_WALK), 0)):
        for current, readings in history.walk(hour, step, bound):
            stopped = any(value == ON for _minute, value in readings)
            # the stop hour matters only if its readings next to ours are OFF
            if not stopped or readings[edge][1] == OFF:
                hours.add(current)
    return hours


def load_window(history, hour, now_hour):
    """Read the hours around `hour` that hold the OFF runs reaching it. Walking back from an
    OFF first reading reads the last hour with readings before it too: only an OFF first
    reading needs the reading before it (to tell an outage), so that lookup costs nothing more."""
    readings = history.readings(hour)
    if readings and readings[0][1] == OFF:
        list(history.walk(hour, -HOUR, hour - MAX_WALK))
    if readings and readings[-1][1] == OFF:
        list(history.walk(hour, HOUR, min(now_hour, hour + MAX_WALK)))


def segments(hours, history):
    """Groups of consecutive loaded hours with only empty hours between them, in order."""
    groups = []
    for hour in sorted(hours):
        if groups:
            gap = groups[-1][-1] + HOUR
            while gap < hour and not history.has_readings(gap):
                gap += HOUR
            if gap == hour:
                groups[-1].append(hour)
                continue
        groups.append([hour])
    return groups


def pin_runs(history, loaded):
    """hour -> the OFF runs of the readings window that holds it (runs measured whole).
    Notes in history.open_runs the runs no ON reading has ended yet."""
    runs_of = {}
    history.open_runs = set()
    for group in segments(loaded, history):
        readings = [reading for hour in group for reading in history.readings(hour)]
        runs = aggregation.off_runs(readings)
        if readings and readings[-1][1] == OFF:
            history.open_runs.add(runs[-1])
        for hour in group:
            runs_of[hour] = runs
    return runs_of


def hour_statistics(history, hours, now, runs_of):
    results = {}
    for hour in sorted(hours):
        readings = history.readings(hour)
        if not readings:
            continue
        if history.pin:
            # an ON first reading starts no outage whatever came before it
            previous = history.previous_value(hour) if readings[0][1] == OFF else None
            results[hour] = aggregation.pin_stats(readings, hour, hour + HOUR, now, previous,
                                                  runs_of.get(hour, ()))
            reach = schedule.outages_reach(hour, hour + HOUR, now, runs_of.get(hour, ()), history.open_runs)
            windows = history.windows_for(hour, reach, history.stored_hour(hour), hour + HOUR)
            if windows is not None:
                results[hour].update(schedule.period_stats(readings, hour, hour + HOUR, now, windows, previous,
                                                           runs_of.get(hour, ()), history.open_runs))
        else:
            results[hour] = aggregation.env_stats(readings, hour, hour + HOUR, now)
    return results


# --- the user's day: a local calendar day made of whole UTC hours and, in a :30 or :45 zone,
# the pieces of the two UTC hours it shares with the days before and after -------------------

def owner_day(history, hour):
    """The local day that holds the hour's last minute: its item is written and consumed with it."""
    return (hour + HOUR - MINUTE).astimezone(history.zone).date()


def value_before(history, minute):
    """The value of the last reading before `minute`: earlier in its hour, else as far back
    as an hour's first reading looks (history.previous_value)."""
    hour = hour_of(minute)
    earlier = [value for reading_minute, value in history.readings(hour) if reading_minute < minute]
    return earlier[-1] if earlier else history.previous_value(hour)


def runs_through(history, hour, now_hour):
    """The OFF runs of the readings around `hour`, each measured whole."""
    load_window(history, hour, now_hour)
    return pin_runs(history, set(history._minutes)).get(hour, ())


def edge_stats(history, hour, low, high, now):
    """Statistics of [low, high), the piece of a UTC hour that lies in a local day."""
    readings = [reading for reading in history.readings(hour) if low <= reading[0] < high]
    if not readings:
        return None
    if not history.pin:
        return aggregation.env_stats(readings, low, high, now)
    # as for an hour: an ON first reading starts no outage whatever came before it
    previous = value_before(history, readings[0][0]) if readings[0][1] == OFF else None
    runs = runs_through(history, hour, hour_of(now))
    stats = aggregation.pin_stats(readings, low, high, now, previous, runs)
    # an edge piece has no item of its own: the current windows (the day keeps what it used)
    windows = history.windows_for(low, schedule.outages_reach(low, high, now, runs, history.open_runs), None)
    if windows is not None:
        stats.update(schedule.period_stats(readings, low, high, now, windows, previous, runs, history.open_runs))
    return stats


def local_day_stats(history, day, now):
    """Attributes of the days item of local date `day` (tz, start, statistics); None without readings."""
    start, end = aggregation.day_window(day, history.zone)
    parts, pieces = [], []  # pieces: (low, high, statistics or None) of every hour or edge piece
    hour = hour_of(start)
    while hour < end:
        low, high = max(hour, start), min(hour + HOUR, end)
        stats = None
        if high - low == HOUR:
            stats = history.hour_stats(hour)
        elif history.has_readings(hour):
            stats = edge_stats(history, hour, low, high, now)
        if stats:
            parts.append(stats)
        pieces.append((low, high, stats or None))
        hour += HOUR
    if not parts:
        return None
    stats = {**dynamo.day_attributes(start, history.zone),
             **aggregation.day_stats(history.sensor, parts, start, end, now)}
    windows = history.windows_for(start, end, history.stored_day(day))
    if windows is not None:
        stats.update(schedule.day_from_parts(pieces, start, end, now, windows))
    return stats


def owned_hours(history, day):
    """The hours whose marker in the hours table the local day's end removes: its whole hours
    and its start's edge hour (those it owns, see owner_day)."""
    start, end = aggregation.day_window(day, history.zone)
    hours, hour = [], hour_of(start)
    while hour + HOUR <= end:
        hours.append(hour)
        hour += HOUR
    return hours


def aggregate_sensor(client, tables, device, sensor, now, result, zone=None, rebuild=(), timetable=None):
    """Recompute what the sensor's new items touch, and the hours of `rebuild` that hold minutes.
    `timetable`: the published schedule (schedule.Snapshot), if one is configured."""
    history = SensorHistory(client, tables, device, sensor, zone)
    history.schedule = timetable
    # Read before any minute: a reading flushed after this query comes with a newer marker ts.
    marked = dynamo.markers(client, tables["minutes"], device, sensor)  # {hour: ts}, the flush's
    history.new_hours = set(marked)
    # A rebuilt hour is recomputed as if its minutes were new (one query per hour of the range).
    history.new_hours.update(hour for hour in rebuild if history.minute_items(hour))
    new_hour_items = set(dynamo.markers(client, tables["hours"], device, sensor))  # the aggregator's own
    history.new_days = {day_of(hour) for hour in new_hour_items}
    history.new_hour_days = {day_of(hour) for hour in history.new_hours}
    if not history.new_hours and not new_hour_items:
        return
    now_hour = hour_of(now)
    recompute = set(history.new_hours)
    if history.pin:
        for hour in sorted(history.new_hours):
            recompute |= run_hours(history, hour, now_hour)
        for hour in sorted(recompute):
            load_window(history, hour, now_hour)
    runs_of = pin_runs(history, set(history._minutes)) if history.pin else {}
    days = sorted({day for hour in recompute | new_hour_items
                   for day in aggregation.local_dates(hour, hour + HOUR, history.zone)})
    total, done = len(recompute), 0
    for day in days:
        # Each hour is written with the local day holding its last minute: whole-hour zones write
        # a day and its hours in one batch, as before.
        hours = sorted(hour for hour in recompute if owner_day(history, hour) == day)
        computed = hour_statistics(history, hours, now, runs_of)
        history.computed.update(computed)
        stamp = utc_now()
        # An unchanged item is not rewritten: fewer writes, and the mirror's files stay as they are.
        hour_items = {hour: dynamo.hour_item(device, sensor, hour, stats, stamp) for hour, stats in computed.items()
                      if statistics_of(history.stored_hour(hour)) != stats}
        writes = [(tables["hours"], item) for item in hour_items.values()]
        stats = local_day_stats(history, day, now)
        result.recomputed_hours += len(computed)
        result.recomputed_days += stats is not None
        start, end = aggregation.day_window(day, history.zone)
        settled = now - SETTLE
        if end > settled:  # the day is recomputed again once it is over (its `expected` grows)
            writes += [(tables["hours"], dynamo.marker_item(device, sensor, hour, stamp))
                       for hour in hour_items if hour not in new_hour_items]
        if stats is not None and statistics_of(history.stored_day(day)) != stats:
            writes.append((tables["days"], dynamo.day_item(device, sensor, day, stats, stamp)))
            result.days += 1
            result.touched.setdefault(sensor, set()).add(start.date())
        dynamo.put_all(client, writes)
        result.hours += len(hour_items)
        # Delete markers only once the hour and day items are stored (a crash before leaves them
        # all), and only those of a period that has ended: until then the next run must
        # recompute it, or its `expected` would stay frozen at what had elapsed. A minute marker
        # the flush wrote again since it was read stays, for the reading that came with it.
        result.consumed += sum(dynamo.delete_marker(client, tables["minutes"], device, sensor, hour, marked[hour])
                               for hour in hours if hour + HOUR <= settled and hour in marked)
        if end <= settled:
            result.consumed += dynamo.delete_all(client, [
                (tables["hours"], {"pk": {"S": pk}, "sk": {"S": sk}})
                for pk, sk in (dynamo.marker_key(device, sensor, hour)
                               for hour in owned_hours(history, day) if hour in new_hour_items)])
        for hour in hours:
            if hour in hour_items or day_of(hour) in history.new_hour_days:
                result.touched.setdefault(sensor, set()).add(day_of(hour).date())
        done += len(hours)
        if total > PROGRESS_EVERY_HOURS:
            log.info("sensor %s: %d/%d hours aggregated (up to %s)", sensor, done, total, f"{day:%Y-%m-%d}")


def statistics_of(stored):
    """The statistics of a stored hours or days item (None if there is none)."""
    if stored is None:
        return None
    return {name: value for name, value in stored.items() if name not in ("pk", "sk", "ts", "pk_status")}


def aggregate(config, device, sensors=None, client=None, now=None, rebuild=None, result=None):
    """Aggregate every sensor of `device` (or just `sensors`) that has new items.

    `rebuild` (first date, last date): also recompute every hour of those UTC dates from their
    minutes, and the local days they fall in, whatever is stored (repairs items an older
    aggregator computed). `result` collects what was done, so a caller still knows which
    partitions changed when a later sensor fails.
    """
    client = client or dynamo.aws_client()
    tables = dynamo.table_names(config["table_prefix"])
    zone = make_zone(config.get("timezone"))
    now = now or utc_now()
    result = AggregateResult() if result is None else result
    hours = [hour for hour in rebuild_hours(*rebuild) if hour <= now] if rebuild else ()
    # tables of an earlier version: their status-index becomes markers on the first run
    legacy.upgrade(client, tables, device, lambda: dynamo.sensors_of(client, tables["minutes"], device),
                   config.get("buffer_dir"))
    timetable = published_schedule(config, now)
    for sensor in sensors or dynamo.sensors_of(client, tables["minutes"], device):
        aggregate_sensor(client, tables, device, sensor, now, result, zone, hours, timetable)
    return result


def published_schedule(config, now):
    """The schedule's Snapshot (its sources refreshed, at most once an hour each), or None
    without one. A feed that fails is logged and its last good copy used: it never stops the
    aggregation."""
    if not schedule.configured(config):
        return None
    try:
        schedule.refresh(config, now)
        timetable = schedule.Snapshot(config)
    except Exception as error:  # noqa: BLE001 (whatever a feed or its cache does, the readings come first)
        log.warning("schedule: can't read the published schedule (%s): aggregating without it", error)
        return None
    if not timetable.complete:
        # info: refresh() has warned of the failure once (cron mails warnings)
        log.info("schedule: no good copy yet of %s: outages are compared with the schedule once there is",
                 ", ".join(timetable.missing))
    return timetable


def rebuild_days(config, device, first, last, sensors=None, client=None, now=None):
    """Recompute the days items of local dates `first` to `last` under the configured zone.

    For after `timezone` changed: days are recomputed from the stored hours (and the minutes
    of their edges), days of another zone with no reading in the new one become empty days.
    New minutes are left to the hourly run.
    """
    client = client or dynamo.aws_client()
    tables = dynamo.table_names(config["table_prefix"])
    zone = make_zone(config.get("timezone"))
    now = now or utc_now()
    result = AggregateResult()
    timetable = published_schedule(config, now)
    for sensor in sensors or dynamo.sensors_of(client, tables["minutes"], device):
        history = SensorHistory(client, tables, device, sensor, zone)
        history.schedule = timetable
        history.days_items_current = False  # they may be keyed by another zone's dates
        writes, day = [], first
        while day <= last:
            start, end = aggregation.day_window(day, zone)
            stats, stored = local_day_stats(history, day, now), history.stored_day(day)
            if stats is None and stored is not None and dynamo.day_zone(stored) != zone.key:
                stats = {**dynamo.day_attributes(start, zone), **aggregation.day_stats(sensor, [], start, end, now)}
            if stats is not None and statistics_of(stored) != stats:
                writes.append((tables["days"], dynamo.day_item(device, sensor, day, stats, utc_now())))
                result.touched.setdefault(sensor, set()).add(start.date())
            day += DAY
        dynamo.put_all(client, writes)
        result.days += len(writes)
    return result


def rebuild_hours(first, last):
    """The UTC hours of the dates first..last, inclusive."""
    start = dt.datetime.combine(first, dt.time(), dt.timezone.utc)
    return [start + n * HOUR for n in range(((last - first).days + 1) * 24)]


# --- the Parquet mirror: partitions to rewrite survive a failed upload ------------------------

def mirror_configured(config):
    return bool(config.get("s3_bucket") or config.get("parquet_dir"))


def _pending_path(config):
    return filebuffer.Buffer(config["buffer_dir"]).directory / MIRROR_PENDING


def load_pending(config):
    """{sensor: {date}} of partitions still to mirror (a failed run leaves them here)."""
    try:
        document = json.loads(_pending_path(config).read_text())
        return {sensor: {dt.date.fromisoformat(day) for day in days} for sensor, days in document.items()}
    except FileNotFoundError:
        return {}
    except (OSError, ValueError, TypeError, AttributeError) as error:
        log.warning("ignoring unreadable %s (%s)", _pending_path(config), error)
        return {}


def save_pending(config, pending):
    document = {sensor: sorted(day.isoformat() for day in days) for sensor, days in pending.items() if days}
    directory = _pending_path(config).parent
    directory.mkdir(parents=True, exist_ok=True)
    filebuffer.write_atomically(directory, MIRROR_PENDING, json.dumps(document, sort_keys=True))


def remember_touched(config, touched):
    """Add `touched` to the partitions still to mirror, on disk; returns them all."""
    pending = load_pending(config)
    for sensor, days in touched.items():
        pending.setdefault(sensor, set()).update(days)
    if any(days for days in touched.values()):
        save_pending(config, pending)
    return pending


def mirror_touched(config, device, touched, client):
    """Rewrite the Parquet partitions of `touched` dates, and any a failed run left pending."""
    # saved before exporting: a crash or an outage must not forget them
    pending = remember_touched(config, touched)
    if not any(pending.values()):
        return
    import mirror  # pyarrow is loaded only by the hourly job, and only when mirroring

    for sensor in sorted(pending):
        mirror.export(config, device, sensor, sorted(pending[sensor]), client=client)
        pending[sensor] = set()
        save_pending(config, pending)


# --- CLI ------------------------------------------------------------------------------------

def build_parser():
    parser = ArgumentParser(prog="aggregate.py", description=__doc__.split("\n\n")[0])
    add_config_flags(parser, KEYS)
    parser.add_argument("--sensor", action="append", metavar="SENSOR",
                        help="only this sensor (a pin number or bme280); repeatable")
    parser.add_argument("--export-from", metavar="DATE",
                        help="rewrite the Parquet mirror from this UTC date instead of aggregating")
    parser.add_argument("--export-to", metavar="DATE", help="last date of --export-from (default: today)")
    parser.add_argument("--rebuild", action="store_true",
                        help="recompute the hours and days of --from..--to from their minutes, then aggregate as usual")
    parser.add_argument("--rebuild-days", action="store_true",
                        help="recompute only the days items of --from..--to (local dates) in the current timezone, "
                             "from the stored hours: after changing timezone")
    parser.add_argument("--from", dest="rebuild_from", metavar="DATE",
                        help="first date of --rebuild (UTC) or --rebuild-days (local)")
    parser.add_argument("--to", dest="rebuild_to", metavar="DATE",
                        help="last date of --rebuild (default: today) or --rebuild-days")
    parser.add_argument("--allow-long-rebuild", action="store_true",
                        help="let --rebuild span more than {} days, or --rebuild-days more than {}".format(
                            *MAX_REBUILD_DAYS.values()))
    return parser


def parse_sensor(name):
    if name == filebuffer.BME280_SENSOR or filebuffer.PIN_SENSOR_RE.fullmatch(name or ""):
        return name
    raise ConfigError(f"--sensor {name!r} is not a pin number (0-27) or {filebuffer.BME280_SENSOR}")


def parse_date(text, flag):
    """A date of a flag, in 2024 to a day ahead (utils.check_time_bounds)."""
    try:
        value = dt.date.fromisoformat(text.strip())
    except (ValueError, AttributeError):
        raise ConfigError(f"{flag} {shown(text)} is not a date such as 2025-06-21") from None
    return check_time_bounds(value, flag)


def check_span(args, first, last, flag):
    """A range longer than MAX_REBUILD_DAYS needs --allow-long-rebuild: it holds the locks for long."""
    if (last - first).days + 1 > MAX_REBUILD_DAYS[flag] and not args.allow_long_rebuild:
        raise ConfigError(f"{flag} --from {first} --to {last} is {(last - first).days + 1} days, more than "
                          f"{MAX_REBUILD_DAYS[flag]}: pass --allow-long-rebuild if you mean it")
    return first, last


def rebuild_range(args):
    """(first, last) dates of --rebuild, None without it."""
    if not args.rebuild:
        if (args.rebuild_from or args.rebuild_to) and not args.rebuild_days:
            raise ConfigError("--from and --to go with --rebuild or --rebuild-days")
        return None
    if args.rebuild_days:
        raise ConfigError("--rebuild recomputes the days of its range too: use one of --rebuild, --rebuild-days")
    if args.export_from:
        raise ConfigError("--rebuild and --export-from go separately")
    if not args.rebuild_from:
        raise ConfigError("--rebuild needs --from DATE")
    first = parse_date(args.rebuild_from, "--from")
    last = parse_date(args.rebuild_to, "--to") if args.rebuild_to else utc_now().date()
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    return check_span(args, first, last, "--rebuild")


def export_range(config, args, sensors):
    if not mirror_configured(config):
        raise ConfigError("nothing to export to: set --bucket (s3_bucket) or --parquet-dir (parquet_dir)")
    start = parse_date(args.export_from, "--export-from")
    end = parse_date(args.export_to, "--export-to") if args.export_to else utc_now().date()
    if end < start:
        raise ConfigError(f"--export-to {end} is before --export-from {start}")
    import mirror

    client = dynamo.aws_client()
    sensors = sensors or dynamo.sensors_of(client, dynamo.table_names(config["table_prefix"])["minutes"],
                                           config["device"])
    mirror.backfill(config, config["device"], sensors, start, end, client=client)


def rebuild_days_range(args):
    """(first, last) local dates of --rebuild-days, checked."""
    if not args.rebuild_days:
        return None  # rebuild_range checks --from and --to without it
    if args.export_from:
        raise ConfigError("--rebuild-days and --export-from are separate runs")
    if not (args.rebuild_from and args.rebuild_to):
        raise ConfigError("--rebuild-days needs --from DATE and --to DATE")
    first, last = parse_date(args.rebuild_from, "--from"), parse_date(args.rebuild_to, "--to")
    if last < first:
        raise ConfigError(f"--to {last} is before --from {first}")
    return check_span(args, first, last, "--rebuild-days")


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_config(args, KEYS)
    sensors = [parse_sensor(name) for name in args.sensor or []]
    if args.export_to and not args.export_from:
        raise ConfigError("--export-to needs --export-from")
    rebuild = rebuild_range(args)
    days_range = rebuild_days_range(args)
    setup_logging(config["log_dir"], "aggregate")
    buffer = filebuffer.Buffer(config["buffer_dir"])
    try:
        with buffer.lock(LOCK_NAME):
            if args.export_from:
                export_range(config, args, sensors)
                return EXIT_OK
            # An hourly job can wait for its answers: a Query page of 1 MB over a Pi's slow link
            # (or a loaded machine's local endpoint) takes longer than the minute job's 10 s.
            client = dynamo.aws_client(read_timeout=HOURLY_READ_TIMEOUT_SECONDS)
            if days_range:
                result = rebuild_days(config, config["device"], *days_range, sensors, client=client)
                log.info("rebuilt %d days items of %s from %s to %s in %s", result.days, config["device"],
                         *days_range, make_zone(config.get("timezone")).key)
                print(f"rebuilt the days of {config['device']} from {days_range[0]} to {days_range[1]} in "
                      f"{make_zone(config.get('timezone')).key}: {result.days} days items changed")
                if mirror_configured(config):
                    mirror_touched(config, config["device"], result.touched, client)
                return EXIT_OK
            # No flush lock: the aggregation rewrites no minute item, and a reading flushed
            # meanwhile comes with a marker written after it (see dynamo.flush).
            result = AggregateResult()
            try:
                aggregate(config, config["device"], sensors, client=client, rebuild=rebuild, result=result)
            except Exception:
                # The sensors aggregated before the failure lost their markers: nothing would
                # bring their partitions back to the mirror but this note.
                if mirror_configured(config):
                    remember_touched(config, result.touched)
                raise
            if result.hours or result.days:
                log.info("aggregated %d hours and %d days of %s; %d markers deleted",
                         result.hours, result.days, config["device"], result.consumed)
            if rebuild:  # asked for by a person, who wants to know what it did (the hourly run stays quiet)
                print(f"rebuilt {config['device']} from {rebuild[0]} to {rebuild[1]} (UTC dates): "
                      f"{result.recomputed_hours} hours and {result.recomputed_days} days recomputed "
                      f"from their minutes; changed: {result.hours} hours items, {result.days} days items")
            if mirror_configured(config):
                mirror_touched(config, config["device"], result.touched, client)
    except filebuffer.BufferLocked:
        log.info("another aggregation is running; this one leaves the work to it")
    except dynamo.CloudUnreachable as error:
        log.warning("DynamoDB or S3 unreachable, aggregation waits for the next run: %s", error,
                    extra=NOT_MAILED)
    except (filebuffer.BufferError, OSError) as error:
        raise JobFailed(f"aggregation failed: {error}") from None
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_cli(main))
