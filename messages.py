"""What a notification says and when: times in the user's zone, durations, texts, documents.

Shared by the Pi's notifications (notify.py) and the watchdog (watchdog.py). Standard library
only: the minute path imports it.
"""

import datetime as dt

LATE_AFTER = dt.timedelta(minutes=2)


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
    """
    at = parse_iso(message["at"])
    where = where_text(message["device"], message["sensor"])
    when = clock_text(at, zone, sent_at)
    if message.get("kind") == "test":
        return f"Test message from blackout-monitor ({where}) at {when}: notifications work."
    if message["state"] == "off":
        text = f"Power OFF at {when} ({where})"
    elif message.get("duration_minutes") is not None:
        text = f"Power back at {when} after {duration_text(message['duration_minutes'])} ({where})"
    elif message.get("off_since_at_least"):  # the first reading ever was OFF: a lower bound only
        since = clock_text(parse_iso(message["off_since_at_least"]), zone, at)
        text = f"Power back at {when}, off since at least {since} ({where})"
    else:
        text = f"Power back at {when} ({where})"
    if sent_at is not None and sent_at - parse_iso(message["queued_at"]) > LATE_AFTER:
        text += f" — sent {clock_text(sent_at, zone, at)}, the link was down"
    return text


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
        return {**{name: message[name] for name in fields}, "text": text}
    return {
        "id": message["id"],
        "device": message["device"],
        "sensor": message["sensor"],
        "state": message["state"],
        "at": message["at"],
        "previous_state": message.get("previous_state"),
        "duration_minutes": message.get("duration_minutes"),
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


def silent_text(device, silent_since, now, zone=None):
    """No word from alex_rpi since 22:31 (5 min): power or internet is down there"""
    return (f"No word from {device} since {clock_text(silent_since, zone, now)} "
            f"({duration_text((now - silent_since).total_seconds() // 60)}): power or internet is down there")


def back_text(device, verdict, zone=None, reference=None):
    """What the watchdog says when a silent device is heard again, by cause (watchdog.judge)."""
    since, until = verdict["silent_since"], verdict["back_ts"]
    if verdict["cause"] == "power":
        off_from, off_until = verdict["off_from"], verdict["off_until"]
        if off_until is None:
            return (f"{device} is back: the power is OFF since {clock_text(off_from, zone, reference)} "
                    f"({duration_text(minutes_between(off_from, until))} so far); it runs on its UPS")
        return (f"{device} is back: the power was OFF {span_text(off_from, off_until, zone, reference)} "
                f"({duration_text(minutes_between(off_from, off_until))})")
    if verdict["cause"] == "link":
        return f"{device} is back: the power stayed ON; the internet was down {span_text(since, until, zone, reference)}"
    return (f"{device} is back after {duration_text(minutes_between(since, until))} of silence "
            f"({span_text(since, until, zone, reference)}) without readings of that time: "
            "the Pi itself was down, so the cause is unknown")
