"""What a notification says and when: times in the user's zone, durations, texts, documents.

Shared by the Pi's notifications (notify.py) and the watchdog (watchdog.py). Standard library
only: the minute path imports it.
"""

import datetime as dt
import logging

log = logging.getLogger("messages")

LATE_AFTER = dt.timedelta(minutes=2)
SCHEDULE_KEYS = ("schedule_ics", "schedule_possible", "schedule_cache")  # utils.KEYS (schedule.py)
# a cut this long before a window's start is that window's (grid operators often start early)
SCHEDULE_EARLY = dt.timedelta(minutes=15)


def time_zone(timezone):
    """The ZoneInfo of an IANA name; None (UTC, shown as 'UTC') when unset."""
    if not timezone:
        return None
    from utils import zone  # the one place zones are made (zoneinfo, with the pinned tzdata)

    return zone(timezone)


def iso(ts):
    """2025-06-21T22:30:03.241969+00:00: UTC with microseconds, as every stored time."""
    return ts.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def parse_iso(text):
    """A stored ISO 8601 time (with its offset) as an aware UTC datetime."""
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    return value.astimezone(dt.timezone.utc)


def clock_text(ts, zone=None, reference=None):
    """'22:30 UTC', '01:30 EEST' in the configured zone; with the date unless it is `reference`'s.

    The zone's abbreviation as the time of day of that instant has it (EET in winter, EEST in
    summer; '+0545' where the zone has none), so no time is read in the wrong zone.
    """
    text, abbreviation = _clock(ts, zone, reference)
    return f"{text} {abbreviation}"


def _clock(ts, zone, reference):
    """(the time as clock_text writes it without its zone, the zone's abbreviation then)."""
    local = ts.astimezone(zone or dt.timezone.utc)
    same_day = reference is not None and reference.astimezone(zone or dt.timezone.utc).date() == local.date()
    return local.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M"), local.tzname()


def duration_text(minutes):
    """'45 min', '3 h 0 min', '2 d 1 h 5 min'."""
    days, rest = divmod(int(minutes), 1440)
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {mins} min"
    if hours:
        return f"{hours} h {mins} min"
    return f"{mins} min"


def where_text(device, sensor):
    return f"device {device}, pin {sensor}" if str(sensor).isdigit() else f"device {device}, sensor {sensor}"


def message_text(message, zone=None, sent_at=None):
    """The human text of a queued notification, marked late when sent long after it was queued.

    Power OFF at 22:30 UTC (device alex_rpi, pin 4)
    Power back at 01:30 UTC after 3 h 0 min (device alex_rpi, pin 4) — sent 02:10 UTC, the link was down

    With a schedule configured the message carries its outage's window (`schedule`, set when
    it was queued, so every retry says the same; None: not in the schedule):
    Power OFF at 18:02 EET (scheduled 18:00–22:00 EET, expected back 22:00; device alex_rpi, pin 4)
    Power OFF at 18:02 EET (not in the schedule; device alex_rpi, pin 4)
    Power back at 20:10 EET after 2 h 8 min, 1 h 50 min before the scheduled end (device alex_rpi, pin 4)
    """
    at = parse_iso(message["at"])
    where = where_text(message["device"], message["sensor"])
    when = clock_text(at, zone, sent_at)
    if message.get("kind") == "test":
        return f"Test message from blackout-monitor ({where}) at {when}: notifications work."
    if message["state"] == "off":
        text = f"Power OFF at {when} ({_off_schedule_note(message, zone, at)}{where})"
    else:
        if message.get("duration_minutes") is not None:
            text = f"Power back at {when} after {duration_text(message['duration_minutes'])}"
        elif message.get("off_since_at_least"):  # the first reading ever was OFF: a lower bound only
            since = clock_text(parse_iso(message["off_since_at_least"]), zone, at)
            text = f"Power back at {when}, off since at least {since}"
        else:
            text = f"Power back at {when}"
        text += f"{_back_schedule_note(message, at)} ({where})"
    if sent_at is not None and sent_at - parse_iso(message["queued_at"]) > LATE_AFTER:
        text += f" — sent {clock_text(sent_at, zone, at)}, the link was down"
    return text


# --- the outage schedule (schedule.py) in messages -----------------------------------------

def schedule_windows(config, start, end, fetch=False, now=None):
    """The schedule's windows overlapping [start, end) (schedule.windows), or None when no
    schedule is configured or it can't be read: the message then says nothing of a schedule,
    and a broken schedule never costs a message."""
    if not config.get("schedule_ics"):
        return None
    try:
        import schedule  # only when a message is composed: never on a quiet minute

        found = schedule.known_windows(config, start, end, fetch=fetch, now=now)
    except Exception as error:
        log.warning("the outage schedule can't be read (%s: %s): the message says nothing of it",
                    type(error).__name__, error)
        return None
    if found is None:
        log.warning("the outage schedule has no readable copy yet: the message says nothing of it")
        return None
    return list(found)


def outage_window(windows, at, early=SCHEDULE_EARLY):
    """The planned window of an outage that began at `at`, or None: the window in force then
    (a definite one before a possible one), else one starting within `early` after it. Windows
    of its kind that touch or overlap it are joined (feeds publish an outage hour by hour)."""
    from schedule import merged  # the windows came from schedule.py: it is loaded already

    windows = merged(windows)
    inside = [w for w in windows if w.start <= at < w.end]
    if not inside:
        inside = [w for w in windows if at < w.start <= at + early]
    if not inside:
        return None
    chosen = min(inside, key=lambda w: (w.possible, w.start))
    return {"start": iso(chosen.start), "end": iso(chosen.end), "possible": bool(chosen.possible)}


def schedule_fields(windows, at):
    """{"schedule": the outage's window or None (not in the schedule)} for a message, or {}
    when the schedule is unknown (`windows` None)."""
    return {} if windows is None else {"schedule": outage_window(windows, at)}


def _off_schedule_note(message, zone, at):
    """'scheduled 18:00–22:00 EET, expected back 22:00; ' / 'not in the schedule; ' / ''."""
    if "schedule" not in message:
        return ""
    window = message["schedule"]
    if not window:
        return "not in the schedule; "
    start, end = parse_iso(window["start"]), parse_iso(window["end"])
    kind = "possible outage" if window.get("possible") else "scheduled"
    return f"{kind} {span_text(start, end, zone, at)}, expected back {_clock(end, zone, at)[0]}; "


def _back_schedule_note(message, at):
    """', 1 h 50 min before the scheduled end' (after it, at it); '' without a window."""
    window = message.get("schedule")
    if not window:
        return ""
    end = "the possible outage's end" if window.get("possible") else "the scheduled end"
    minutes = round((at - parse_iso(window["end"])).total_seconds() / 60)
    if minutes == 0:
        return f", at {end}"
    return f", {duration_text(abs(minutes))} {'before' if minutes < 0 else 'after'} {end}"


def _watchdog_off_note(schedule, zone, at):
    """'; scheduled 18:00–22:00 EET, expected back 22:00' / '; not in the schedule' / ''."""
    if not schedule:
        return ""
    return "; " + _off_schedule_note({"schedule": schedule["window"]}, zone, at)[:-2]


def silent_schedule_note(window, zone=None, reference=None):
    """' — inside the scheduled outage 18:00–22:00 EET' for a silence in a window, else ''."""
    if not window:
        return ""
    kind = "possible outage" if window.get("possible") else "scheduled outage"
    return f" — inside the {kind} {span_text(parse_iso(window['start']), parse_iso(window['end']), zone, reference)}"


WATCHDOG_FIELDS = ("id", "device", "event", "at", "silent_since")
WATCHDOG_BACK_FIELDS = ("cause", "silent_minutes", "off_minutes")


def subject_text(message):
    """A message's subject: SNS's Subject, an Apprise service's title (an e-mail's subject)."""
    if message.get("kind") == "watchdog":
        return f"blackout-monitor: {message['device']} {message['event']}"
    state = message["state"].upper() if message.get("kind") != "test" else "test"
    return f"blackout-monitor: power {state} ({message['device']}, {message['sensor']})"


def webhook_document(message, text):
    """The JSON body POSTed to the webhook: a power change of the Pi, or a watchdog event."""
    if message.get("kind") == "watchdog":
        fields = WATCHDOG_FIELDS + (WATCHDOG_BACK_FIELDS if message["event"] == "back" else ()) + (
            ("skew_minutes",) if message["event"] == "skew" else ())
        if "schedule" in message:
            fields += ("schedule",)
        return {**{name: message[name] for name in fields}, "text": text}
    schedule = {"schedule": message["schedule"]} if "schedule" in message else {}
    return {
        "id": message["id"],
        "device": message["device"],
        "sensor": message["sensor"],
        "state": message["state"],
        "at": message["at"],
        "previous_state": message.get("previous_state"),
        "duration_minutes": message.get("duration_minutes"),
        **schedule,  # with a schedule configured: the outage's window {start, end, possible}, or null
        "text": text,
    }


# --- the watchdog's texts ------------------------------------------------------------------

def span_text(start, end, zone=None, reference=None):
    """'22:31–01:30 UTC' (the zone's abbreviation once, twice if the clocks changed between;
    dates only where not `reference`'s day)."""
    (first, first_zone), (last, last_zone) = _clock(start, zone, reference), _clock(end, zone, reference)
    return (f"{first}–{last} {last_zone}" if first_zone == last_zone
            else f"{first} {first_zone}–{last} {last_zone}")


def minutes_between(start, end):
    return max(0, round((end - start).total_seconds() / 60))


def silent_text(device, silent_since, now, zone=None, window=None):
    """No word from alex_rpi since 22:31 (5 min): power or internet is down there
    (+ ' — inside the scheduled outage 22:00–02:00 EET' when `window`, from outage_window)"""
    return (f"No word from {device} since {clock_text(silent_since, zone, now)} "
            f"({duration_text((now - silent_since).total_seconds() // 60)}): power or internet is down there"
            + silent_schedule_note(window, zone, now))


def back_text(device, verdict, zone=None, reference=None, schedule=None):
    """What the watchdog says when a silent device is heard again, by cause (watchdog.judge).

    `schedule`: with a schedule configured, {"window": the power outage's window or None}
    (outage_window); its note then follows a power verdict's text."""
    since, until = verdict["silent_since"], verdict["back_ts"]
    if verdict["cause"] == "power":
        off_from, off_until = verdict["off_from"], verdict["off_until"]
        if off_until is None:
            return (f"{device} is back: the power is OFF since {clock_text(off_from, zone, reference)} "
                    f"({duration_text(minutes_between(off_from, until))} so far); it runs on its UPS"
                    + _watchdog_off_note(schedule, zone, off_from))
        return (f"{device} is back: the power was OFF {span_text(off_from, off_until, zone, reference)} "
                f"({duration_text(minutes_between(off_from, off_until))})"
                + (_back_schedule_note({"schedule": schedule["window"]}, off_until) if schedule else ""))
    if verdict["cause"] == "link":
        return f"{device} is back: the power stayed ON; the internet was down {span_text(since, until, zone, reference)}"
    return (f"{device} is back after {duration_text(minutes_between(since, until))} of silence "
            f"({span_text(since, until, zone, reference)}) without readings of that time: "
            "the Pi itself was down, so the cause is unknown")
