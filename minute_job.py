"""What both minute jobs share: the time flags, one or many readings, buffer, flush.

`read_pin.py` and `read_env.py` supply the sensor name and a function that takes a reading;
this module stamps it, checks the clock, stores it durably and flushes the buffer.
"""

import datetime as dt
import logging

import filebuffer
import sensors
from utils import EXIT_FAILED, EXIT_OK, NOT_MAILED, ConfigError, JobFailed, parse_time, utc_now

log = logging.getLogger("minute_job")
MAX_SIMULATED_SPAN = dt.timedelta(days=366)
JOB_KEYS = ("device", "table_prefix", "buffer_dir", "log_dir", "retention_days", "unreachable_alert_hours")


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
    """Take, stamp, check, buffer and flush the readings of one sensor (see run_all)."""
    return run_all(config, args, [(sensor, take_reading)], notifier)


def run_all(config, args, readers, notifier=None):
    """Take, stamp, check, buffer and flush readings of every (sensor, take_reading) in
    `readers`, in one process: one flush (one BatchWriteItem a minute) for all of them.
    `take_reading(at)` returns the values.

    A sensor that fails costs only its own reading: the others are still stored and flushed,
    then the failure is raised (ConfigError for missing hardware, JobFailed for a failed read
    or a full disk). When the link is known to be down (link.py), the minute buffers only: no
    boto3; queued notifications are still tried, each channel with its own backoff. `notifier`
    (read_pin.py's notify.Notifier) sees each pin reading once it is stored and sends its queue
    after the flush; it never raises.
    """
    times = reading_times(args)
    from_system_clock = args.at is None
    store = filebuffer.Buffer(config["buffer_dir"])
    held = stored = 0
    failures = {}  # sensor -> the exception that cost its readings
    for at in times:
        readings = []
        for sensor, take_reading in readers:
            if sensor in failures:
                continue
            try:
                readings.append(filebuffer.Reading(config["device"], sensor, at, take_reading(at)))
            except sensors.HardwareError as error:
                failures[sensor] = ConfigError(str(error))
            except sensors.SensorReadError as error:
                failures[sensor] = JobFailed(str(error))
        problem = filebuffer.clock_problem(
            at, timesync_dir=filebuffer.TIMESYNC_DIR if from_system_clock else None
        )
        if problem:
            for reading in readings:
                try:
                    path = store.hold(reading, problem)
                except filebuffer.BufferError as error:
                    failures[reading.sensor] = JobFailed(f"{error}; the reading of sensor {reading.sensor} is lost")
                    continue
                log.error("reading not stored under its key, kept in %s: %s", path, problem)
                held += 1
            continue
        for reading, (_path, error) in zip(readings, store.write_all(readings)):
            if error is not None:
                failures[reading.sensor] = JobFailed(f"{error}; the reading of sensor {reading.sensor} is lost")
                continue
            stored += 1
            if notifier is not None:
                notifier.observe(reading)
            if len(times) == 1:
                log.info("sensor %s at %s: %s", reading.sensor, filebuffer.format_ts(at), reading.values)
    if len(times) > 1:
        log.info("sensors %s: buffered %d simulated readings from %s to %s, %d held",
                 ", ".join(sensor for sensor, _ in readers), stored, filebuffer.format_ts(times[0]),
                 filebuffer.format_ts(times[-1]), held)
    if failures and not stored + held:  # nothing new to send: fail as a one-sensor job always did
        _raise(failures)
    link_up = True
    try:
        if not args.no_flush:
            link_up = flush_unless_down(config)
    finally:
        if notifier is not None:  # messages never wait for DynamoDB: each channel has its own backoff
            notifier.finish(link_up=link_up)
    if failures:
        _raise(failures)
    if not link_up and not args.no_flush:
        report_long_outage(config)
    return EXIT_FAILED if held else EXIT_OK


def report_long_outage(config, now=None):
    """Readings pile up while DynamoDB stays unreachable: after unreachable_alert_hours, say so
    once a day with exit 1, so cron mails it. A wrong region, lost credentials or a dead
    router must not keep a Pi silently cut off for weeks."""
    import link

    now = now or utc_now()
    after = dt.timedelta(hours=config.get("unreachable_alert_hours") or 24)
    since = link.overdue(config["buffer_dir"], now, after)
    if since is not None:
        raise JobFailed(
            f"DynamoDB unreachable since {since:%Y-%m-%d %H:%M} UTC ({link.down_for(since, now)}); "
            f"{filebuffer.Buffer(config['buffer_dir']).count()} readings wait in {config['buffer_dir']}: "
            "check the network, the AWS region and credentials (said once a day)")


def _raise(failures):
    """One error for the sensors that failed: a usage error (2) if any hardware is missing."""
    errors = list(failures.values())
    if len(errors) == 1:
        raise errors[0]
    kind = ConfigError if any(isinstance(error, ConfigError) for error in errors) else JobFailed
    raise kind("; ".join(str(error) for error in errors))


def flush_unless_down(config, now=None, probe=None):
    """Flush, unless the link is known to be down (link.py): then only say so, boto3 unimported.
    Returns whether DynamoDB was reachable (the watchdog's state may be asked)."""
    import link

    down = link.still_down(config["buffer_dir"], now or utc_now(), probe=probe)
    if down is None:
        import dynamo

        dynamo.flush_and_report(config)
        return link.load(config["buffer_dir"]) is None
    log.warning("DynamoDB unreachable, readings stay buffered (%d waiting): down since %s; %s:%s: %s",
                filebuffer.Buffer(config["buffer_dir"]).count(), down.since.strftime("%Y-%m-%d %H:%M UTC"),
                *down.address, down.reason, extra=NOT_MAILED)
    return False


if __name__ == "__main__":
    import sys

    from utils import not_a_command, run_cli

    sys.exit(run_cli(lambda argv: not_a_command(
        "minute_job.py", __doc__, "run `python read_pin.py` or `python read_env.py` (--help lists their flags)",
        argv)))
