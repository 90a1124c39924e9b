"""The durable on-disk buffer: one JSON file per reading, until DynamoDB acknowledged it.

A file is written to a temporary name, fsynced, renamed into place and the directory fsynced,
so a crash or power cut leaves either the whole reading or none of it. Names sort by reading
time (`20250621T190003.241969Z-alex_rpi-4.json`: no colons, valid on any filesystem), so a
plain sorted listing is oldest first. Files that can't be read or aren't valid readings are
moved to `bad/`; readings taken with an implausible clock go to `held/` and are never sent.
"""

import contextlib
import datetime as dt
import errno
import fcntl
import json
import logging
import math
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from utils import DEVICE_RE, EARLIEST_TIME

FORMAT_VERSION = 1
SUFFIX = ".json"
TEMP_PREFIX = ".tmp-"
FLUSH_LOCK = ".flush.lock"
# A temp file older than this was left by a process that died before its rename.
STALE_TEMP_SECONDS = 120
BME280_SENSOR = "bme280"
BME280_QUANTITIES = ("temperature_c", "humidity_pct", "pressure_hpa")
PIN_SENSOR_RE = re.compile(r"^(?:[0-9]|1[0-9]|2[0-7])$")
# The BME280's operating range (datasheet 1): a value outside is a broken read, never stored.
VALUE_RANGES = {"temperature_c": (-40.0, 85.0), "humidity_pct": (0.0, 100.0), "pressure_hpa": (300.0, 1100.0)}
EARLIEST_PLAUSIBLE = EARLIEST_TIME  # utils holds the date: no reading of this project is older
# systemd-timesyncd touches this file on every synchronisation; /run is emptied at boot.
TIMESYNC_DIR = Path("/run/systemd/timesync")
MAX_FUTURE = dt.timedelta(days=1)
HELD_BECAUSE = "held_because"  # the field a held file's reason is kept in

log = logging.getLogger(__name__)


class BufferError(Exception):
    """The buffer directory can't be written."""


class BufferLocked(Exception):
    """Another process holds the buffer's flush lock."""


class InvalidReading(Exception):
    """A buffer file is not a valid reading."""


@dataclass(frozen=True)
class Reading:
    device: str
    sensor: str
    ts: dt.datetime
    values: dict = field(hash=False)

    def to_json(self):
        document = {"format": FORMAT_VERSION, "device": self.device, "sensor": self.sensor,
                    "ts": self.ts.isoformat(timespec="microseconds")}
        document.update(self.values)
        return json.dumps(document, sort_keys=True)

    @property
    def file_name(self):
        stamp = self.ts.strftime("%Y%m%dT%H%M%S.%fZ")
        return f"{stamp}-{self.device}-{self.sensor}{SUFFIX}"


def format_ts(ts):
    """2025-06-21T19:00:03.241969+00:00: a reading's time in logs and in its DynamoDB item."""
    return ts.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def _number(document, name):
    value = document.get(name)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise InvalidReading(f"{name} is {value!r}, not a number")
    return value


def parse_reading(text):
    """A Reading from a buffer file's text, or InvalidReading saying what is wrong."""
    try:
        document = json.loads(text)
    except (ValueError, UnicodeDecodeError) as error:
        raise InvalidReading(f"not JSON ({error})") from None
    if not isinstance(document, dict):
        raise InvalidReading("not a JSON object")
    version = document.get("format")
    if version != FORMAT_VERSION:
        raise InvalidReading(f"format {version!r} is not {FORMAT_VERSION}")
    device, sensor, stamp = document.get("device"), document.get("sensor"), document.get("ts")
    if not isinstance(device, str) or not DEVICE_RE.fullmatch(device):
        raise InvalidReading(f"device {device!r} is not valid")
    if not isinstance(stamp, str):
        raise InvalidReading(f"ts {stamp!r} is not a time")
    try:
        ts = dt.datetime.fromisoformat(stamp)
        if ts.tzinfo is None:
            raise InvalidReading(f"ts {stamp!r} has no offset")
        ts = ts.astimezone(dt.timezone.utc)
    except (ValueError, OverflowError):  # OverflowError: 9999-12-31T23:59:59-01:00 is past year 9999 in UTC
        raise InvalidReading(f"ts {stamp!r} is not a time in years 1 to 9999 UTC") from None
    if sensor == BME280_SENSOR:
        names = BME280_QUANTITIES
    elif isinstance(sensor, str) and PIN_SENSOR_RE.fullmatch(sensor):
        names = ("reading",)
        if document.get("reading") not in (0, 1) or isinstance(document.get("reading"), bool):
            raise InvalidReading(f"reading {document.get('reading')!r} is not 0 or 1")
    else:
        raise InvalidReading(f"sensor {sensor!r} is not a pin number or {BME280_SENSOR!r}")
    if ts < EARLIEST_PLAUSIBLE:  # e.g. a held file moved back by hand: never under a 1970 key
        raise InvalidReading(f"ts {stamp!r} is before {EARLIEST_PLAUSIBLE.year}")
    values = {name: _number(document, name) for name in names}
    for name, (low, high) in VALUE_RANGES.items():
        if name in values and not low <= values[name] <= high:
            raise InvalidReading(f"{name} {values[name]!r} is outside the BME280's range {low}..{high}")
    # held_because: a held file moved back by hand (README) keeps the reason it was held for
    extra = set(document) - {"format", "device", "sensor", "ts", HELD_BECAUSE, *names}
    if extra:
        raise InvalidReading(f"unexpected fields {sorted(extra)}")
    return Reading(device, sensor, ts, values)


def clock_problem(ts, now=None, timesync_dir=TIMESYNC_DIR):
    """Why a reading's time can't be trusted, or None.

    Before 2024 the clock was never set (a Pi without RTC boots at 1970 or at its last
    shutdown). When systemd-timesyncd is in use but has not synchronised since boot, the
    clock is still the guess restored at boot. A clock that merely lost NTP during a long
    outage keeps good time and is accepted: that is exactly when readings matter most.
    """
    if ts < EARLIEST_PLAUSIBLE:
        return f"clock reads {ts.isoformat()}, before 2024: the clock is not set"
    now = now or dt.datetime.now(dt.timezone.utc)
    if ts > now + MAX_FUTURE:
        return f"reading time {ts.isoformat()} is more than a day after the system clock"
    if timesync_dir is not None and timesync_dir.is_dir() and not (timesync_dir / "synchronized").exists():
        return "the system clock has not been synchronised since boot (systemd-timesyncd)"
    return None


def _fsync_dir(directory):
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_atomically(directory, name, text):
    """Temp file, fsync, rename, fsync the directory."""
    (path, error), = write_all_atomically(directory, [(name, text)])
    if error is not None:
        raise error
    return path


def write_all_atomically(directory, files):
    """Write each (name, text) of `files` as write_atomically does, with one directory fsync
    for all: on an SD card every fsync is a journal commit. Returns (path, None) for each file
    stored and (None, OSError) for each that could not be; a failed one never stops the others.
    """
    directory = Path(directory)
    outcomes = []
    for name, text in files:
        temp = directory / f"{TEMP_PREFIX}{os.getpid()}-{time.monotonic_ns()}-{name}"
        try:
            fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, text.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(temp, directory / name)
            outcomes.append((directory / name, None))
        except OSError as error:
            with contextlib.suppress(OSError):
                temp.unlink()
            outcomes.append((None, error))
    if any(path is not None for path, _error in outcomes):
        try:
            _fsync_dir(directory)
        except OSError as error:  # the renames may not survive a power cut: none is stored for sure
            outcomes = [(None, error)] * len(outcomes)
    return outcomes


class Buffer:
    """The buffer directory and its `bad/` and `held/` subdirectories."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.bad_dir = self.directory / "bad"
        self.held_dir = self.directory / "held"

    def _ensure(self, directory):
        try:
            directory.mkdir(parents=True, exist_ok=True)
        except FileExistsError:  # mkdir's "File exists" would hide which of the two it is
            raise BufferError(f"can't create buffer directory {directory}: a file has that name, "
                              "not a directory") from None
        except OSError as error:
            raise BufferError(f"can't create buffer directory {directory}: {error.strerror}") from None

    def write(self, reading):
        """Store a reading durably; BufferError if the disk is full or read-only."""
        path, error = self.write_all([reading])[0]
        if error is not None:
            raise error
        return path

    def write_all(self, readings):
        """Store readings durably, one directory fsync for all. Returns (path, None) for each
        reading stored, (None, BufferError) for each that could not be (disk full, read-only)."""
        try:
            self._ensure(self.directory)
        except BufferError as error:
            return [(None, error)] * len(readings)
        outcomes = write_all_atomically(self.directory, [(r.file_name, r.to_json()) for r in readings])
        return [(path, None) if error is None else
                (None, BufferError(f"can't write reading to {self.directory}: {error.strerror or error}"))
                for path, error in outcomes]

    def hold(self, reading, reason):
        """Keep a reading with an untrustworthy clock out of the flush, with the reason."""
        self._ensure(self.held_dir)
        document = json.loads(reading.to_json())
        document[HELD_BECAUSE] = reason
        try:
            return write_atomically(self.held_dir, reading.file_name, json.dumps(document))
        except OSError as error:
            raise BufferError(f"can't write held reading to {self.held_dir}: {error.strerror}") from None

    def pending(self):
        """Buffered reading files, oldest first (after rescuing temps of dead writers)."""
        try:
            entries = list(os.scandir(self.directory))
        except FileNotFoundError:
            return []
        if self._rescue_stale_temps(entries):
            entries = list(os.scandir(self.directory))
        return sorted(
            Path(entry.path) for entry in entries
            if entry.name.endswith(SUFFIX) and not entry.name.startswith(".")
        )

    def _rescue_stale_temps(self, entries):
        # A writer killed between fsync and rename leaves a complete reading under its temp
        # name: put it in place rather than lose it; parse checks decide if it's whole.
        cutoff = time.time() - STALE_TEMP_SECONDS
        rescued = 0
        for entry in entries:
            if not entry.name.startswith(TEMP_PREFIX):
                continue
            try:
                if entry.stat().st_mtime > cutoff:
                    continue
                final = entry.name.split("-", 3)[-1]
                if not final.endswith(SUFFIX):
                    final += SUFFIX
                os.rename(entry.path, self.directory / final)
                log.warning("recovered %s left by an interrupted write", final)
                rescued += 1
            except OSError:
                continue
        return rescued

    def load(self, path):
        """The Reading in `path`, or None after moving an invalid file to bad/."""
        try:
            with open(path, "rb") as handle:
                text = handle.read().decode("utf-8")
            return parse_reading(text)
        except FileNotFoundError:
            return None  # another flush sent it meanwhile
        except (OSError, UnicodeDecodeError, InvalidReading) as error:
            reason = error.strerror if isinstance(error, OSError) else str(error)
            self.quarantine(path, reason)
            return None
        except Exception as error:  # whatever else a file raises, it must not block the others
            self.quarantine(path, f"{type(error).__name__}: {error}")
            return None

    def set_aside(self, path, reading, reason):
        """Hold a buffered reading (held/, with the reason) and remove it from the buffer;
        True once it is held. A reading that can't be held stays where it is."""
        try:
            self.hold(reading, reason)
        except BufferError as error:
            log.error("%s: %s, and it can't be held: %s", Path(path).name, reason, error)
            return False
        self.remove([path])
        return True

    def release_held(self, device, now=None):
        """Move the held readings of `device` whose time is now plausible back into the buffer,
        to be flushed. Returns (released, [(file name, why it stays held)])."""
        released, kept = 0, []
        try:
            names = sorted(name for name in os.listdir(self.held_dir) if name.endswith(SUFFIX))
        except FileNotFoundError:
            return 0, []
        for name in names:
            path = self.held_dir / name
            try:
                with open(path, "rb") as handle:
                    reading = parse_reading(handle.read().decode("utf-8"))
            except (OSError, UnicodeDecodeError, InvalidReading) as error:
                kept.append((name, error.strerror if isinstance(error, OSError) else str(error)))
                continue
            if reading.device != device:
                kept.append((name, f"its device is {reading.device}, not {device}: release it with "
                                   f"--device {reading.device} on the Pi of that name, or delete it"))
                continue
            problem = clock_problem(reading.ts, now, timesync_dir=None)
            if problem:
                kept.append((name, f"{problem}: fix its ts first"))
                continue
            self.write(reading)
            os.unlink(path)
            _fsync_dir(self.held_dir)
            released += 1
        return released, kept

    def quarantine(self, path, reason):
        path = Path(path)
        try:
            self._ensure(self.bad_dir)
            os.rename(path, self.bad_dir / path.name)
            _fsync_dir(self.directory)
            log.warning("moved bad buffer file %s to %s: %s", path.name, self.bad_dir, reason)
        except (OSError, BufferError) as error:
            log.error("bad buffer file %s (%s) can't be moved to bad/: %s", path.name, reason, error)

    def remove(self, paths):
        """Delete files whose readings DynamoDB acknowledged; one directory fsync for all."""
        removed = 0
        for path in paths:
            try:
                os.unlink(path)
                removed += 1
            except FileNotFoundError:
                pass
        if removed:
            _fsync_dir(self.directory)
        return removed

    def count(self, subdirectory=None):
        directory = self.directory / subdirectory if subdirectory else self.directory
        try:
            return sum(1 for name in os.listdir(directory) if name.endswith(SUFFIX) and not name.startswith("."))
        except FileNotFoundError:
            return 0

    @contextlib.contextmanager
    def lock(self, name=FLUSH_LOCK, wait=0.0):
        """Exclusive lock; BufferLocked if another process (a flush, or an aggregation for its
        own lock) still holds it after `wait` seconds (0: don't wait)."""
        self._ensure(self.directory)
        with flock(self.directory / name, wait) as locked:
            if not locked:
                raise BufferLocked(str(self.directory))
            yield


@contextlib.contextmanager
def flock(path, wait=0.0):
    """An exclusive flock on `path` (created if missing); yields whether it was had within
    `wait` seconds. The kernel drops it when the process dies: no stale lock files."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    deadline = time.monotonic() + wait
    try:
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except OSError as error:
                if error.errno not in (errno.EAGAIN, errno.EACCES, errno.EWOULDBLOCK):
                    raise
                if time.monotonic() >= deadline:
                    yield False
                    return
                time.sleep(0.05)
        yield True
    finally:
        os.close(fd)
