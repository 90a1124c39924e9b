"""What both minute jobs share: the time flags, one or many readings, buffer, flush.

`read_pin.py` and `read_env.py` supply the sensor name and a function that takes a reading;
this module stamps it, checks the clock, stores it durably and flushes the buffer.
"""

import datetime as dt
import logging

import filebuffer
import dynamo
import sensors
from utils import EXIT_FAILED, EXIT_OK, ConfigError, JobFailed, parse_time, utc_now

log = logging.getLogger("minute_job")
MAX_SIMULATED_SPAN = dt.timedelta(days=366)
JOB_KEYS = ("device", "table_prefix", "buffer_dir", "log_dir", "retention_days")


def add_job_flags(parser):
    parser.add_argument("--simulate", action="store_true",
                        help="use a simulated sensor instead of the hardware")
    parser.add_argument("--at", metavar="ISO8601",
                        help="with --simulate: take the reading as of this time (UTC without offset)")
    parser.add_argument("--until", metavar="ISO8601",
                        help="with --simulate --at: one reading a minute from --at up to, not including, this time")
    parser.add_argument("--no-flush", action="store_true", help="buffer the reading only")


def reading_times(args, now=None):
    """The instants to take readings at: now, --at, or every minute of --at..--until."""
    if args.at is None:
        if args.until is not None:
            raise ConfigError("--until needs --at")
        return [now or utc_now()]
    if not args.simulate:
        raise ConfigError("--at needs --simulate (real sensors read the present)")
    start = parse_time(args.at, "--at")
    end = start if args.until is None else parse_time(args.until, "--until")
    # the same bounds as filebuffer.clock_problem, but the user typed these: a usage error
    if start < filebuffer.EARLIEST_PLAUSIBLE:
        raise ConfigError(f"--at {args.at} is before {filebuffer.EARLIEST_PLAUSIBLE.year}: "
                          "no reading can be stored under that time")
    latest = (now or utc_now()) + filebuffer.MAX_FUTURE
    if max(start, end - dt.timedelta(minutes=1)) > latest:
        raise ConfigError(f"--at/--until reach beyond {latest:%Y-%m-%d %H:%M} UTC, "
                          "more than a day after the system clock")
    if args.until is None:
        return [start]
    if end <= start:
        raise ConfigError(f"--until {args.until!r} must be after --at {args.at!r}")
    if end - start > MAX_SIMULATED_SPAN:
        raise ConfigError(f"--at..--until spans more than {MAX_SIMULATED_SPAN.days} days")
    step = dt.timedelta(minutes=1)
    count = -(-(end - start) // step)  # ceiling: END is excluded
    return [start + step * i for i in range(count)]


def run(config, args, sensor, take_reading, notifier=None):
    """Take, stamp, check, buffer and flush readings. `take_reading(at)` returns the values.

    `notifier` (read_pin.py's notify.Notifier) sees each reading once it is stored and sends
    its queue after the flush; it never raises, so it can't cost a reading or the exit code.
    """
    times = reading_times(args)
    from_system_clock = args.at is None
    store = filebuffer.Buffer(config["buffer_dir"])
    held = stored = 0
    for at in times:
        try:
            values = take_reading(at)
        except sensors.HardwareError as error:
            raise ConfigError(str(error)) from None
        except sensors.SensorReadError as error:
            raise JobFailed(str(error)) from None
        reading = filebuffer.Reading(config["device"], sensor, at, values)
        problem = filebuffer.clock_problem(
            at, timesync_dir=filebuffer.TIMESYNC_DIR if from_system_clock else None
        )
        try:
            if problem:
                path = store.hold(reading, problem)
                log.error("reading not stored under its key, kept in %s: %s", path, problem)
                held += 1
                continue
            store.write(reading)
        except filebuffer.BufferError as error:
            raise JobFailed(f"{error}; the reading of sensor {sensor} is lost") from None
        stored += 1
        if notifier is not None:
            notifier.observe(reading)
        if len(times) == 1:
            log.info("sensor %s at %s: %s", sensor, dynamo.format_ts(at), values)
    if len(times) > 1:
        log.info("sensor %s: buffered %d simulated readings from %s to %s, %d held",
                 sensor, stored, dynamo.format_ts(times[0]), dynamo.format_ts(times[-1]), held)
    try:
        if not args.no_flush:
            dynamo.flush_and_report(config)
    finally:
        if notifier is not None:
            notifier.finish()
    return EXIT_FAILED if held else EXIT_OK
