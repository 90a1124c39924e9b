"""A Pi's items are untrusted: validators for every item read across devices.

Every item in the tables was written by some Pi with its own credentials, and IAM's
LeadingKeys guards only the `pk`'s leading text: a stolen or broken Pi can write any attribute,
any `sk` and any `pk_status` under its own `device#NAME#` keys. Whatever reads more than one
device's items (the watchdog, the aggregator, `dynamo.py status`) passes each item through one
of these validators. Each returns the parsed value or raises BadItem with a one-line reason; the
caller skips the item with `skip()` (one log line naming its key, counted), so one device's
items never stop another device's work.

The key formats stay in dynamo.py: a key is valid when dynamo's own key function, given the
parsed parts, gives back the very same text (so `2025-6-1-3` or `time#7` never pass).
"""

import datetime as dt
import logging
import math
import re
import threading

import dynamo
import filebuffer

log = logging.getLogger("untrusted")

EARLIEST = filebuffer.EARLIEST_PLAUSIBLE  # no Pi's reading is older than 2024
MAX_AHEAD = dt.timedelta(days=1)          # nor stamped more than a day after now
MAX_KEY_SHOWN = 120                       # a log line names the key, shortened
WATCHDOG_PHASES = ("watching", "unseen", "silent", "resumed")
HOUR_SK_RE = re.compile(r"^hour#(\d{4})-(\d{2})-(\d{2})-(\d{2})$")


class BadItem(Exception):
    """An item that is not what its key says it is; the message is a one-line reason."""


# --- skipping, counted -----------------------------------------------------------------------

_lock = threading.Lock()
_skipped = [0]


def skip(what, item, error, logger=None):
    """One log line naming the bad item's key and why it is skipped; counted (skipped_count)."""
    with _lock:
        _skipped[0] += 1
    (logger or log).warning("skipped a bad %s item %s: %s", what, key_text(item), one_line(error))


def checked(items, validator, what, *args, logger=None, **kwargs):
    """validator(item, *args, **kwargs) of each item, the bad ones skipped (skip())."""
    for item in items:
        try:
            yield validator(item, *args, **kwargs)
        except BadItem as error:
            skip(what, item, error, logger)


def skipped_count():
    """Bad items skipped by this process so far (callers compare before and after a run)."""
    with _lock:
        return _skipped[0]


def one_line(value, limit=MAX_KEY_SHOWN):
    text = " ".join(str(value).split())
    return text if len(text) <= limit else f"{text[:limit - 1]}…"


def key_text(item):
    """pk/sk of a raw or plain item, shortened for a log line (never its other attributes)."""
    if not isinstance(item, dict):
        return "(not an item)"
    parts = []
    for name in ("pk", "sk"):
        value = item.get(name)
        if isinstance(value, dict) and len(value) == 1:
            value = next(iter(value.values()))
        parts.append(repr(value) if isinstance(value, str) else "?")
    return one_line(f"pk={parts[0]} sk={parts[1]}")


# --- helpers -----------------------------------------------------------------------------------

def as_plain(item):
    """A raw (attribute-value) or plain item as plain Python; BadItem if it is neither."""
    if not isinstance(item, dict):
        raise BadItem("not an item")
    if all(isinstance(value, dict) and len(value) == 1 for value in item.values()) and item:
        try:
            return dynamo.plain(item)
        except (ValueError, TypeError, AttributeError) as error:
            raise BadItem(f"attribute values unreadable ({one_line(error, 60)})") from None
    return item


def _text(item, name):
    value = item.get(name)
    if not isinstance(value, str):
        raise BadItem(f"{name} is {type(value).__name__}, not a string")
    return value


def _time(text, name="ts"):
    """An ISO 8601 time with its offset, as aware UTC, in 2024 .. year 9999."""
    try:
        value = dt.datetime.fromisoformat(text)
        if value.tzinfo is None:
            raise BadItem(f"{name} {one_line(repr(text), 60)} has no offset")
        value = value.astimezone(dt.timezone.utc)
    except (ValueError, TypeError, OverflowError):
        raise BadItem(f"{name} {one_line(repr(text), 60)} is not an ISO 8601 time") from None
    if value < EARLIEST:
        raise BadItem(f"{name} {text} is before {EARLIEST.year}")
    return value


def _not_ahead(value, now, name="ts"):
    if now is not None and value > now + MAX_AHEAD:
        raise BadItem(f"{name} {value.isoformat()} is more than a day after now")


def _partition(pk, device, sensor):
    """(device, sensor, start) of a data pk that names `device` and `sensor` (when given)."""
    try:
        owner, named_sensor, start = dynamo.parse_partition(pk)
    except (ValueError, TypeError, OverflowError):
        raise BadItem("pk is not a data partition key") from None
    if device is not None and owner != device:
        raise BadItem(f"pk names device {one_line(repr(owner), 40)}, not {device!r}")
    if sensor is not None and named_sensor != sensor:
        raise BadItem(f"pk names sensor {one_line(repr(named_sensor), 40)}, not {sensor!r}")
    if not valid_sensor(named_sensor):
        raise BadItem(f"sensor {one_line(repr(named_sensor), 40)} is not a pin number or bme280")
    if start < EARLIEST:
        raise BadItem(f"pk's period {start:%Y-%m-%d} is before {EARLIEST.year}")
    return owner, named_sensor, start


def valid_sensor(name):
    return isinstance(name, str) and (name == filebuffer.BME280_SENSOR or bool(filebuffer.PIN_SENSOR_RE.fullmatch(name)))


def _number(item, name):
    value = item.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise BadItem(f"{name} is not a number")
    return value


def _values(item, sensor):
    """The reading's values as the sensor has them: a pin's 0/1, the BME280's three numbers."""
    if sensor == filebuffer.BME280_SENSOR:
        return {name: _number(item, name) for name in filebuffer.BME280_QUANTITIES}
    value = item.get("reading")
    if isinstance(value, bool) or value not in (0, 1):
        raise BadItem("reading is not 0 or 1")
    return {"reading": value}


# --- the validators ------------------------------------------------------------------------------

def minute_item(item, device=None, sensor=None, now=None):
    """A minutes item as a plain dict whose `ts` lies in the minute its key names (the one the
    flush writes: minute_key(ts)), with the sensor's values; BadItem otherwise.
    """
    item = as_plain(item)
    pk, sk = _text(item, "pk"), _text(item, "sk")
    owner, named_sensor, _start = _partition(pk, device, sensor)
    ts = _time(_text(item, "ts"))
    _not_ahead(ts, now)
    try:
        expected = dynamo.minute_key(owner, named_sensor, ts)
    except (ValueError, OverflowError):
        raise BadItem("ts has no minute key") from None
    if expected != (pk, sk):
        raise BadItem(f"ts {item['ts']} is not in the minute of its key")
    _values(item, named_sensor)
    return item


def registry_item(item, device):
    """The sensor a registry item of `device` records; BadItem unless its key and attributes
    agree (registry_key(device, sensor)) and the sensor is a pin number or bme280."""
    item = as_plain(item)
    sensor = item.get("sensor")
    if not valid_sensor(sensor):
        raise BadItem("sensor is missing or not a pin number or bme280")
    if item.get("device") != device:
        raise BadItem(f"device attribute is not {device!r}")
    if (item.get("pk"), item.get("sk")) != dynamo.registry_key(device, sensor):
        raise BadItem("key does not match its device and sensor")
    return sensor


def period_item(item, device, sensor, kind):
    """The start (UTC) of an hours (kind "hours") or days ("days") item of device and sensor,
    whose key is the one dynamo gives back for that period; BadItem otherwise."""
    item = as_plain(item)
    pk, sk = _text(item, "pk"), _text(item, "sk")
    owner, named_sensor, start = _partition(pk, device, sensor)
    try:
        number = dynamo.sk_number(sk)
        if kind == "hours":
            period = start + dt.timedelta(hours=number)
            canonical = dynamo.hour_key(owner, named_sensor, period)
        elif kind == "days":
            period = start.date().replace(day=number)
            canonical = dynamo.day_key(owner, named_sensor, period)
        else:
            raise ValueError(f"unknown kind {kind}")
    except (ValueError, TypeError, OverflowError, IndexError):
        raise BadItem(f"sk is not a {kind[:-1]} of its partition") from None
    if canonical != (pk, sk):
        raise BadItem(f"key is not an {kind[:-1]} key")
    if kind == "days":
        if not isinstance(item.get("tz", "UTC"), str):
            raise BadItem("tz is not a string")
        if "start" in item:
            _time(_text(item, "start"), "start")
        return dt.datetime.combine(period, dt.time(), dt.timezone.utc)
    return period


def index_item(item, device, sensor):
    """(pk, sk) of a status-index item (legacy pk_status design) that really is the device's
    and sensor's: its pk must name them too, so no item in another device's partition makes
    this device's aggregator read, write or consume it."""
    item = as_plain(item)
    pk, sk = _text(item, "pk"), _text(item, "sk")
    if item.get("pk_status") != dynamo.status_key(device, sensor):
        raise BadItem("pk_status is not this sensor's")
    _owner, _sensor, start = _partition(pk, device, sensor)
    try:
        dynamo.period_start(pk, sk)
        number = dynamo.sk_number(sk)
    except (ValueError, TypeError, OverflowError, IndexError):
        raise BadItem("sk is not a period of its partition") from None
    fields = pk.rsplit("#", 1)[1].count("-") + 1
    if fields == 4 and dynamo.minute_key(device, sensor, start + dt.timedelta(minutes=number)) != (pk, sk):
        raise BadItem("key is not a minute key")
    if fields == 3 and dynamo.hour_key(device, sensor, start + dt.timedelta(hours=number)) != (pk, sk):
        raise BadItem("key is not an hour key")
    if fields not in (3, 4):
        raise BadItem("key is not a minute or hour key")
    return pk, sk


def new_hour_marker(item, device=None, sensor=None, now=None):
    """(device, sensor, hour start UTC, ts) of a "new hours" marker
    (pk device#NAME#sensor#S#status#new, sk hour#YYYY-MM-DD-HH, ts); BadItem otherwise."""
    item = as_plain(item)
    pk, sk = _text(item, "pk"), _text(item, "sk")
    parts = pk.split("#")
    if len(parts) != 6:
        raise BadItem("pk is not a marker key")
    owner, named_sensor = parts[1], parts[3]
    if pk != dynamo.status_key(owner, named_sensor):
        raise BadItem("pk is not a marker key")
    if device is not None and owner != device:
        raise BadItem(f"pk names device {one_line(repr(owner), 40)}, not {device!r}")
    if sensor is not None and named_sensor != sensor:
        raise BadItem(f"pk names sensor {one_line(repr(named_sensor), 40)}, not {sensor!r}")
    if not valid_sensor(named_sensor):
        raise BadItem("pk's sensor is not a pin number or bme280")
    match = HOUR_SK_RE.fullmatch(sk)
    try:
        hour = dt.datetime(*map(int, match.groups()), tzinfo=dt.timezone.utc) if match else None
    except ValueError:
        hour = None
    if hour is None:
        raise BadItem("sk is not hour#YYYY-MM-DD-HH")
    if hour < EARLIEST:
        raise BadItem(f"hour {hour:%Y-%m-%d-%H} is before {EARLIEST.year}")
    _not_ahead(hour, now, "hour")
    ts = _time(_text(item, "ts"))
    return owner, named_sensor, hour, ts


def watchdog_state(state, device):
    """The watchdog's decoded state of `device` (watchdog_state._watchdog_state), checked: the
    phase is known and the times its phase needs are readable; BadItem otherwise."""
    if not isinstance(state, dict):
        raise BadItem("not a state")
    if state.get("device") != device:
        raise BadItem(f"device is not {device!r}")
    phase = state.get("phase", "watching")
    if phase not in WATCHDOG_PHASES:
        raise BadItem(f"phase {one_line(repr(phase), 40)} is unknown")
    needed = {"silent": ("silent_since",), "resumed": ("silent_since", "back_ts", "resumed_at")}.get(phase, ())
    for name in needed:
        _time(_text(state, name), name)
    for name in ("silent_since", "back_ts", "resumed_at", "last_word", "lease_until", "seen_ts", "seen_at"):
        if state.get(name) is not None:
            _time(_text(state, name), name)
    for name in ("skew_seconds", "dropped"):
        try:
            float(state.get(name) or 0)
        except (TypeError, ValueError):
            raise BadItem(f"{name} is not a number") from None
    if not isinstance(state.get("outbox", []), list) or not all(isinstance(m, dict) for m in state.get("outbox", [])):
        raise BadItem("outbox is not a list of announcements")
    sensors = state.get("sensors")
    if sensors is not None and not (isinstance(sensors, list) and all(valid_sensor(s) for s in sensors)):
        raise BadItem("sensors is not a list of sensor names")
    return state
