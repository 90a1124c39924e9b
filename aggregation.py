"""Statistics of hours and days from minute readings: plain functions, no AWS.

A pin reading is a (minute, value) pair, value 1 = power ON, 0 = OFF; minutes are aware UTC
datetimes on the minute. The rules, which the README states for users:

- `expected` counts the period's minutes up to and including the current one;
  `unknown = expected - count` (a missing minute is unknown, never OFF).
- `outages` counts ON->OFF transitions between consecutive readings, however many minutes
  without a reading lie between them; the period's first reading is compared with `previous`,
  the last reading before the period as far back as the OFF-run walk looks (the aggregator's
  MAX_WALK), and with nothing if there is none. So a day's outages are its hours' outages.
- An OFF run is a maximal sequence of OFF readings with no ON reading between them (unknown
  minutes inside do not break it); its length is the minutes from its first to its last OFF
  reading, inclusive. `longest_outage_minutes` is the longest run with an OFF reading in the
  period, measured whole, across period boundaries.
"""

import datetime as dt

from filebuffer import BME280_QUANTITIES, BME280_SENSOR

MINUTE = dt.timedelta(minutes=1)
HOUR = dt.timedelta(hours=1)
DAY = dt.timedelta(days=1)
ON, OFF = 1, 0
UPTIME_DECIMALS = 6
MEAN_DECIMALS = 3


def is_pin(sensor):
    return sensor != BME280_SENSOR


def floor_minute(ts):
    return ts.replace(second=0, microsecond=0)


def expected_minutes(start, end, now, latest=None):
    """Minutes of [start, end) up to and including the current one (all of them once over).

    `latest` (the newest reading's minute) stretches "now" when a reading is ahead of it, so
    that `unknown` is never negative.
    """
    last = floor_minute(max(now, latest) if latest is not None else now)
    if last >= end:
        return (end - start) // MINUTE
    if last < start:
        return 0
    return (last - start) // MINUTE + 1


def off_runs(readings):
    """[(first, last)] minutes of the OFF runs in time-ordered (minute, value) readings."""
    runs, first, last = [], None, None
    for minute, value in readings:
        if value == OFF:
            first = minute if first is None else first
            last = minute
        elif first is not None:
            runs.append((first, last))
            first = None
    if first is not None:
        runs.append((first, last))
    return runs


def run_minutes(run):
    first, last = run
    return (last - first) // MINUTE + 1


def longest_outage(runs, start, end):
    """Length of the longest run with an OFF reading in [start, end); 0 if none."""
    return max((run_minutes(run) for run in runs if run[0] < end and run[1] >= start), default=0)


def count_outages(values, previous=None):
    """ON->OFF transitions in `values`, the first compared with `previous` (None: nothing)."""
    transitions = 0
    for value in values:
        if previous == ON and value == OFF:
            transitions += 1
        previous = value
    return transitions


def pin_stats(readings, start, end, now, previous=None, runs=()):
    """Statistics of a pin sensor over [start, end) from the period's (minute, value) readings.

    `runs` are the OFF runs of a window of readings wide enough to hold every run touching
    the period whole (see off_runs).
    """
    values = [value for _minute, value in readings]
    count = len(values)
    on = sum(1 for value in values if value == ON)
    expected = expected_minutes(start, end, now, readings[-1][0] if readings else None)
    return {
        "count": count,
        "expected": expected,
        "unknown": expected - count,
        "on": on,
        "off": count - on,
        "uptime": round(on / count, UPTIME_DECIMALS) if count else 0.0,
        "outages": count_outages(values, previous),
        "longest_outage_minutes": longest_outage(runs, start, end),
    }


def env_stats(readings, start, end, now):
    """Statistics of the BME280 over [start, end) from (minute, {quantity: value}) readings."""
    count = len(readings)
    expected = expected_minutes(start, end, now, readings[-1][0] if readings else None)
    stats = {"count": count, "expected": expected, "unknown": expected - count}
    for quantity in BME280_QUANTITIES:
        values = [values[quantity] for _minute, values in readings if quantity in values]
        if values:
            stats[f"{quantity}_min"] = min(values)
            stats[f"{quantity}_max"] = max(values)
            stats[f"{quantity}_mean"] = round(sum(values) / len(values), MEAN_DECIMALS)
    return stats


def day_window(day, zone):
    """[start, end) in UTC of the calendar date `day` in `zone`: 23, 24 or 25 hours long.

    Where a zone's clocks skip midnight, the day starts at the first local time there is.
    """
    start = dt.datetime.combine(day, dt.time(), tzinfo=zone).astimezone(dt.timezone.utc)
    end = dt.datetime.combine(day + DAY, dt.time(), tzinfo=zone).astimezone(dt.timezone.utc)
    return start, end


def local_dates(start, end, zone):
    """The calendar dates in `zone` that the UTC span [start, end) overlaps, in order."""
    first, last = start.astimezone(zone).date(), (end - MINUTE).astimezone(zone).date()
    return [first + DAY * n for n in range((last - first).days + 1)]


def day_stats(sensor, hours, start, end, now):
    """Statistics of the day [start, end) from the statistics of its parts with readings.

    The parts are its whole hours and, where the day does not begin or end on a UTC hour
    (a :30 or :45 zone), the pieces of its edge hours. Counts add up and means are weighted
    by count. Each part compares its first reading with the last reading before it, across
    empty hours, so the day's outages are its parts' sum; each part's longest outage is
    already measured whole, so the day's is their maximum.
    """
    hours = [stats for stats in hours if stats.get("count")]
    count = sum(stats["count"] for stats in hours)
    expected = max(expected_minutes(start, end, now), count)  # count: readings ahead of now
    stats = {"count": count, "expected": expected, "unknown": expected - count}
    if is_pin(sensor):
        on = sum(stats_["on"] for stats_ in hours)
        stats.update({
            "on": on,
            "off": count - on,
            "uptime": round(on / count, UPTIME_DECIMALS) if count else 0.0,
            "outages": sum(stats_["outages"] for stats_ in hours),
            "longest_outage_minutes": max((stats_["longest_outage_minutes"] for stats_ in hours), default=0),
        })
        return stats
    for quantity in BME280_QUANTITIES:
        weighted = [(h[f"{quantity}_mean"], h["count"]) for h in hours if f"{quantity}_mean" in h]
        if weighted:
            stats[f"{quantity}_min"] = min(h[f"{quantity}_min"] for h in hours if f"{quantity}_min" in h)
            stats[f"{quantity}_max"] = max(h[f"{quantity}_max"] for h in hours if f"{quantity}_max" in h)
            total = sum(n for _mean, n in weighted)
            stats[f"{quantity}_mean"] = round(sum(mean * n for mean, n in weighted) / total, MEAN_DECIMALS)
    return stats
