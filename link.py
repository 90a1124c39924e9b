"""Is DynamoDB reachable? What the minute job knows about the link without importing boto3.

A flush that finds DynamoDB unreachable records it in BUFFER/.link-down.json: since when, the
endpoint boto3 used, the AWS settings it was worked out from, and when the last full attempt
was. While that file exists, a minute first opens a TCP connection to the endpoint's host and
port (`probe`, 3 s at most). If the connection is refused, has no route or the name doesn't
resolve, the link is still down: the minute buffers its readings and stops there, without
importing boto3 or sending notifications, and without writing to the card again. Once the
probe connects the minute flushes as usual, and the flush that succeeds removes the file: the
readings and the notifications queued meanwhile go out in the first minute after the link is
back. Once an hour a minute flushes whatever the probe says, in case the probe is wrong (an
HTTP proxy, a firewall that lets only boto3's traffic through); with a proxy configured the
probe is skipped altogether.

`since` says how long the link has been down; the file is rewritten only by full attempts.
"""

import datetime as dt
import json
import os
from pathlib import Path

STATE_FILE = ".link-down.json"
REPORT_EVERY = dt.timedelta(days=1)  # a long outage is said once a day (cron mails it), not every minute
PROBE_TIMEOUT_SECONDS = 3.0
FULL_ATTEMPT_EVERY = dt.timedelta(hours=1)
# What boto3 works the endpoint out from: another value means another endpoint, so try it.
SETTINGS = ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_REGION", "AWS_DEFAULT_REGION",
            "AWS_PROFILE", "AWS_CONFIG_FILE")
PROXY_VARIABLES = ("https_proxy", "http_proxy", "all_proxy")


def state_path(buffer_dir):
    return Path(buffer_dir) / STATE_FILE


def settings(environ=None):
    environ = os.environ if environ is None else environ
    return {name: environ[name] for name in SETTINGS if name in environ}


def load(buffer_dir):
    """The recorded state of a link that is down, or None (up, or nothing readable recorded)."""
    try:
        state = json.loads(state_path(buffer_dir).read_text())
        _parse(state["since"]), _parse(state["last_attempt"])
        return state
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def record_down(buffer_dir, endpoint, error, now, environ=None):
    """A full attempt found DynamoDB unreachable: remember since when, and where it tried."""
    import filebuffer

    environ = os.environ if environ is None else environ
    earlier = load(buffer_dir)
    since = earlier["since"] if earlier and earlier.get("settings") == settings(environ) else _iso(now)
    state = {"since": since, "last_attempt": _iso(now), "endpoint": endpoint,
             "settings": settings(environ), "error": " ".join(str(error).split())[:300]}
    if earlier and earlier["since"] == since and earlier.get("reported"):
        state["reported"] = earlier["reported"]  # the same outage: said once a day, not once an hour
    filebuffer.write_atomically(Path(buffer_dir), STATE_FILE, json.dumps(state, sort_keys=True))


def record_up(buffer_dir):
    """A flush reached DynamoDB: forget the outage. (A removal lost in a power cut costs one probe.)"""
    try:
        os.unlink(state_path(buffer_dir))
    except FileNotFoundError:
        pass


class Down:
    """The link is known to be down: since when, and what the probe met."""

    def __init__(self, since, address, reason):
        self.since, self.address, self.reason = since, address, reason


def still_down(buffer_dir, now, environ=None, probe=None):
    """Down if the link was recorded down and the probe still can't connect; None when this
    minute should flush (nothing recorded, other settings, the hourly attempt, a proxy, or
    the probe connected)."""
    environ = os.environ if environ is None else environ
    state = load(buffer_dir)
    if state is None or state.get("settings") != settings(environ):
        return None
    if now - _parse(state["last_attempt"]) >= FULL_ATTEMPT_EVERY:
        return None
    if any(environ.get(name) or environ.get(name.upper()) for name in PROXY_VARIABLES):
        return None
    address = endpoint_address(state.get("endpoint"))
    if address is None:
        return None
    reason = (probe or connects)(*address)
    return None if reason is None else Down(_parse(state["since"]), address, reason)


def overdue(buffer_dir, now, after):
    """When the recorded outage began, if it has lasted `after` or longer and was not reported
    in the last REPORT_EVERY (it is then marked reported); else None."""
    import filebuffer

    state = load(buffer_dir)
    if state is None or now - _parse(state["since"]) < after:
        return None
    reported = state.get("reported")
    try:
        if reported and now - _parse(reported) < REPORT_EVERY:
            return None
    except (TypeError, ValueError):
        pass  # an unreadable mark: report, and write a good one
    state["reported"] = _iso(now)
    filebuffer.write_atomically(Path(buffer_dir), STATE_FILE, json.dumps(state, sort_keys=True))
    return _parse(state["since"])


def down_for(since, now):
    """'3 d 2 h', '26 h' is harder to read: days and hours of an outage."""
    hours = max(0, int((now - since).total_seconds() // 3600))
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h" if days else f"{hours} h"


def status_line(buffer_dir, now):
    """`dynamo.py status`'s line about a link recorded down, or None."""
    state = load(buffer_dir)
    if state is None:
        return None
    since = _parse(state["since"])
    return (f"link: DynamoDB unreachable since {since:%Y-%m-%d %H:%M} UTC ({down_for(since, now)}), "
            f"last tried {_parse(state['last_attempt']):%Y-%m-%d %H:%M} UTC: {state.get('error', '')}")


def endpoint_address(endpoint):
    """(host, port) of an endpoint URL such as https://dynamodb.eu-central-1.amazonaws.com."""
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(endpoint)
        port = parts.port or {"https": 443, "http": 80}.get(parts.scheme)
    except (ValueError, TypeError, AttributeError):
        return None
    return (parts.hostname, port) if parts.hostname and port else None


def connects(host, port, timeout=PROBE_TIMEOUT_SECONDS):
    """None if a TCP connection to host:port opens within `timeout`, else what went wrong."""
    import socket

    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as error:
        return " ".join(str(error).split()) or type(error).__name__
    return None


def _iso(ts):
    return ts.astimezone(dt.timezone.utc).isoformat(timespec="seconds")


def _parse(text):
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(text)
    return value
