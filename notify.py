"""Outage and restore notifications: the pin's state, a durable queue, Telegram, webhook, SNS.

The minute job (`read_pin.py`) hands every stored reading to a `Notifier`. It keeps the pin's
announced state in `BUFFER/notify/state-DEVICE-PIN.json`; a different value must hold for
`notify_after` consecutive readings before it is announced, as of the first reading of the new
state. An announcement becomes one file in `BUFFER/notify/queue/`, written (temp, fsync,
rename) before anything is sent. After the flush the queue is sent oldest first to every
configured channel; a file records which channels acknowledged it and is removed once all
have. Each message has a stable id: the SNS FIFO deduplication id and the webhook's
`Idempotency-Key`, so a retry after a crash is recognisable where the channel allows it.

    BUFFER/notify/state-alex_rpi-4.json   the pin's state (survives reboots)
    BUFFER/notify/queue/*.json            notifications not yet delivered everywhere
    BUFFER/notify/bad/*.json              notifications a channel gave up on, unreadable files
    BUFFER/notify/simulated/*.json        what `--at ... --until ...` history would have sent
    BUFFER/notify/channels.json           per-channel backoff: failures, next attempt, last error

    python notify.py list [--buffer-dir DIR]   # queued and simulated notifications, as text

Only the standard library is imported here; boto3 only inside the SNS sender. Secrets (the
bot token, the webhook URL) are never logged: every error text is passed through `redact`.
"""

import contextlib
import dataclasses
import datetime as dt
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path

import filebuffer
from utils import (
    EXIT_OK,
    ArgumentParser,
    ConfigError,
    add_config_flags,
    load_config,
    run_cli,
    utc_now,
)

log = logging.getLogger("notify")

KEYS = ("notify_after", "telegram_token", "telegram_chat_id", "telegram_api_url",
        "webhook_url", "sns_topic_arn", "timezone")
FORMAT_VERSION = 1
NOTIFY_DIR = "notify"
SUFFIX = ".json"
SEND_BUDGET_SECONDS = 15.0     # what a minute job spends sending after its flush, at most
HTTP_TIMEOUT_SECONDS = 5.0     # one request (connect + answer)
LATE_AFTER = dt.timedelta(minutes=2)
BACKOFF_FIRST_SECONDS = 30     # transient failures: 30 s, 1, 2, 4, then every 5 min
BACKOFF_MAX_SECONDS = 300
REJECTED_RETRY_SECONDS = 600   # a 4xx (bad token, unknown chat) is retried every 10 min...
MAX_REJECTIONS = 6             # ...and after 6 rejections that channel gives the message up
LOCK_WAIT_SECONDS = 3.0
STALE_TEMP_SECONDS = 120
USER_AGENT = "blackout-monitor"
ID_NAMESPACE = uuid.UUID("5f0e4b8e-6a43-4c1e-9b1e-2f4f2a7c9d10")
STATES = {0: "off", 1: "on"}


# --- secrets --------------------------------------------------------------------------------

def redact(text, secrets):
    """`text` with every secret (and a bot token's secret half) replaced by '***'."""
    text = str(text)
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, "***")
    return text


def _one_line(text, limit=300):
    text = " ".join(str(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


# --- times and texts ------------------------------------------------------------------------

def _zone(timezone):
    if not timezone:
        return None
    from zoneinfo import ZoneInfo

    return ZoneInfo(timezone)


def _iso(ts):
    return ts.astimezone(dt.timezone.utc).isoformat(timespec="microseconds")


def _parse_iso(text):
    value = dt.datetime.fromisoformat(text)
    if value.tzinfo is None:
        raise ValueError(f"{text!r} has no offset")
    return value.astimezone(dt.timezone.utc)


def clock_text(ts, zone=None, reference=None):
    """'22:30 UTC' (or '22:30' in the configured zone); with the date unless it is `reference`'s."""
    local = ts.astimezone(zone or dt.timezone.utc)
    same_day = reference is not None and reference.astimezone(zone or dt.timezone.utc).date() == local.date()
    text = local.strftime("%H:%M" if same_day else "%Y-%m-%d %H:%M")
    return text if zone else text + " UTC"


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
    at = _parse_iso(message["at"])
    where = where_text(message["device"], message["sensor"])
    when = clock_text(at, zone, sent_at)
    if message.get("kind") == "test":
        return f"Test message from blackout-monitor ({where}) at {when}: notifications work."
    if message["state"] == "off":
        text = f"Power OFF at {when} ({where})"
    elif message.get("duration_minutes") is not None:
        text = f"Power back at {when} after {duration_text(message['duration_minutes'])} ({where})"
    else:
        text = f"Power back at {when} ({where})"
    if sent_at is not None and sent_at - _parse_iso(message["queued_at"]) > LATE_AFTER:
        text += f" — sent {clock_text(sent_at, zone, at)}, the link was down"
    return text


def webhook_document(message, text):
    """The JSON body POSTed to the webhook."""
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


# --- the pin's state (pure) -----------------------------------------------------------------

def new_state(device, sensor, value, ts):
    """The state recorded from the first reading ever: no announcement, duration unknown."""
    return {
        "format": FORMAT_VERSION, "device": device, "sensor": sensor,
        "epoch": uuid.uuid4().hex, "seq": 0,
        "state": value, "since": _iso(ts), "since_known": False, "last_ts": _iso(ts),
        "candidate": None,
    }


def advance(state, value, ts, notify_after):
    """Feed one reading to the state machine. Returns (new state, announcement or None).

    A value different from the announced state starts (or extends) a candidate run; when the
    run reaches `notify_after` readings the change is announced as of the run's first reading.
    The announced state's value again ends the candidate: a shorter flap says nothing.
    """
    state = dict(state)
    state["last_ts"] = _iso(ts)
    if value == state["state"]:
        state["candidate"] = None
        return state, None
    candidate = state.get("candidate")
    if candidate and candidate["value"] == value:
        candidate = dict(candidate, count=candidate["count"] + 1)
    else:
        candidate = {"value": value, "since": _iso(ts), "count": 1}
    if candidate["count"] < notify_after:
        state["candidate"] = candidate
        return state, None
    at = _parse_iso(candidate["since"])
    duration = None
    if state.get("since_known"):
        duration = max(0, round((at - _parse_iso(state["since"])).total_seconds() / 60))
    seq = state["seq"] + 1
    message = {
        "format": FORMAT_VERSION,
        "kind": "power",
        "id": str(uuid.uuid5(ID_NAMESPACE, f"{state['epoch']}/{seq}")),
        "device": state["device"],
        "sensor": state["sensor"],
        "state": STATES[value],
        "at": candidate["since"],
        "previous_state": STATES[state["state"]],
        "previous_since": state["since"] if state.get("since_known") else None,
        "duration_minutes": duration,
        "queued_at": _iso(ts),
        "delivered": {},
        "rejections": {},
        "gave_up": {},
    }
    state.update(seq=seq, state=value, since=candidate["since"], since_known=True, candidate=None)
    return state, message


# --- files ----------------------------------------------------------------------------------

def notify_dir(buffer_dir):
    return Path(buffer_dir) / NOTIFY_DIR


def _state_path(directory, device, sensor):
    return directory / f"state-{device}-{sensor}{SUFFIX}"


def _message_name(message):
    at = _parse_iso(message["at"])
    return f"{at:%Y%m%dT%H%M%S.%fZ}-{message['device']}-{message['sensor']}-{message['id']}{SUFFIX}"


def _json_files(directory):
    """The .json files of `directory` (not temps), removing temps left by dead writers."""
    try:
        entries = list(os.scandir(directory))
    except FileNotFoundError:
        return []
    cutoff = time.time() - STALE_TEMP_SECONDS
    files = []
    for entry in entries:
        if entry.name.startswith(filebuffer.TEMP_PREFIX):
            # a queue file or state killed before its rename: the state was not advanced,
            # so the next reading announces the change again
            with contextlib.suppress(OSError):
                if entry.stat().st_mtime < cutoff:
                    os.unlink(entry.path)
        elif entry.name.endswith(SUFFIX) and not entry.name.startswith("."):
            files.append(Path(entry.path))
    return sorted(files)


def _write_json(directory, name, document):
    directory.mkdir(parents=True, exist_ok=True)
    return filebuffer.write_atomically(directory, name, json.dumps(document, sort_keys=True))


def _read_json(path):
    with open(path, "rb") as handle:
        document = json.loads(handle.read().decode("utf-8"))
    if not isinstance(document, dict):
        raise ValueError("not a JSON object")
    return document


def load_state(directory, device, sensor):
    """The saved state, or None when there is none (or it is unreadable: logged)."""
    path = _state_path(directory, device, sensor)
    try:
        state = _read_json(path)
        if state.get("format") != FORMAT_VERSION or state.get("state") not in (0, 1):
            raise ValueError("not a pin state")
        _parse_iso(state["since"]), _parse_iso(state["last_ts"])
        int(state["seq"]), str(state["epoch"])
        return state
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as error:
        log.warning("pin state %s is unreadable (%s): starting again from this reading", path, error)
        return None


def _load_message(path):
    message = _read_json(path)
    for name in ("id", "device", "sensor", "state", "at", "queued_at"):
        if not isinstance(message.get(name), str):
            raise ValueError(f"{name} missing")
    _parse_iso(message["at"]), _parse_iso(message["queued_at"])
    for name in ("delivered", "rejections", "gave_up"):
        if not isinstance(message.setdefault(name, {}), dict):
            raise ValueError(f"{name} is not an object")
    return message


def _quarantine(path, reason):
    bad = path.parent.parent / "bad"
    try:
        bad.mkdir(parents=True, exist_ok=True)
        os.rename(path, bad / path.name)
        log.warning("moved notification file %s to %s: %s", path.name, bad, reason)
    except OSError as error:
        log.error("notification file %s (%s) can't be moved to bad/: %s", path.name, reason, error)


def _lock(path, wait=0.0):
    """An exclusive flock on `path`; yields False when it can't be had within `wait` seconds."""
    path.parent.mkdir(parents=True, exist_ok=True)
    return filebuffer.flock(path, wait)


# --- channels -------------------------------------------------------------------------------

@dataclasses.dataclass
class Outcome:
    ok: bool
    detail: str                    # one line, secrets removed
    rejected: bool = False         # a 4xx: the channel refused it (configuration), not the link
    retry_after: float = None      # seconds the channel asked us to wait


TRANSIENT_STATUSES = {408, 425, 429}


def _http_outcome(status, detail, retry_after=None, hint=""):
    if 200 <= status < 300:
        return Outcome(True, detail)
    transient = status in TRANSIENT_STATUSES or status >= 500
    text = f"HTTP {status}" + (f": {detail}" if detail else "") + (f" ({hint})" if hint and not transient else "")
    return Outcome(False, text, rejected=not transient, retry_after=retry_after)


def _post_json(url, document, headers, timeout):
    """POST JSON without following redirects; (status, headers, body bytes). Network errors raise."""
    import urllib.error
    import urllib.request

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None  # a redirected POST would become a GET: report the 3xx instead

    request = urllib.request.Request(
        url, data=json.dumps(document).encode("utf-8"), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": USER_AGENT, **headers},
    )
    opener = urllib.request.build_opener(NoRedirect)
    try:
        with opener.open(request, timeout=timeout) as response:
            return response.status, response.headers, response.read(65536)
    except urllib.error.HTTPError as error:
        with contextlib.suppress(Exception):
            return error.code, error.headers, error.read(65536)
        return error.code, error.headers, b""


def _network_failure(error, secrets):
    reason = getattr(error, "reason", None) or error
    return Outcome(False, _one_line(redact(f"{type(reason).__name__}: {reason}", secrets)))


def _retry_after_header(headers):
    with contextlib.suppress(TypeError, ValueError, AttributeError):
        return float(headers.get("Retry-After"))
    return None


class Telegram:
    """A bot's sendMessage to one chat. The token is part of the URL: never shown."""

    name = "telegram"

    def __init__(self, token, chat_id, api_url):
        self.token, self.chat_id, self.api_url = token, chat_id, api_url.rstrip("/")
        self.secrets = (token, token.split(":", 1)[-1])

    def send(self, message, text, timeout):
        url = f"{self.api_url}/bot{self.token}/sendMessage"
        document = {"chat_id": self.chat_id, "text": text, "disable_web_page_preview": True}
        try:
            status, headers, body = _post_json(url, document, {}, timeout)
        except Exception as error:  # URLError, timeouts, resets, bad URLs: all say the link
            return _network_failure(error, self.secrets)
        try:
            answer = json.loads(body.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        description = _one_line(redact(answer.get("description", ""), self.secrets), 200)
        retry_after = (answer.get("parameters") or {}).get("retry_after") if status == 429 else None
        if not isinstance(retry_after, (int, float)):
            retry_after = _retry_after_header(headers) if status == 429 else None
        if 200 <= status < 300 and answer.get("ok") is False:
            return Outcome(False, f"Telegram answered not ok: {description}", rejected=True)
        hint = {401: "check telegram_token", 404: "check telegram_token and telegram_api_url",
                400: "check telegram_chat_id; the chat must have written to the bot first",
                403: "the bot was blocked or removed from the chat"}.get(status, "")
        detail = "sent" if 200 <= status < 300 else description
        return _http_outcome(status, detail, retry_after, hint)


class Webhook:
    """POST of a small JSON document, with the message id as Idempotency-Key."""

    name = "webhook"

    def __init__(self, url):
        import base64
        from urllib.parse import unquote, urlsplit, urlunsplit

        parts = urlsplit(url)
        userinfo, _, host = parts.netloc.rpartition("@")
        # the path, query and credentials of a webhook URL are often its secret
        self.secrets = (url, parts.path if len(parts.path) > 1 else "", parts.query, userinfo)
        # urllib takes user:password@ for part of the host name: send it as Basic auth instead
        self.url = urlunsplit(parts._replace(netloc=host)) if userinfo else url
        self.auth = {}
        if userinfo:
            user, _, password = userinfo.partition(":")
            token = base64.b64encode(f"{unquote(user)}:{unquote(password)}".encode()).decode()
            self.auth = {"Authorization": f"Basic {token}"}
            self.secrets += (token,)

    def send(self, message, text, timeout):
        headers = {"Idempotency-Key": message["id"], **self.auth}
        try:
            status, headers, body = _post_json(self.url, webhook_document(message, text), headers, timeout)
        except Exception as error:
            return _network_failure(error, self.secrets)
        reason = "sent" if 200 <= status < 300 else _one_line(redact(body.decode("utf-8", "replace"), self.secrets), 120)
        return _http_outcome(status, reason, _retry_after_header(headers) if status in (429, 503) else None,
                             "check webhook_url")


class Sns:
    """AWS SNS Publish; on a FIFO topic with the message id as MessageDeduplicationId."""

    name = "sns"
    THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "KMSThrottling",
                 "InternalError", "InternalFailure", "ServiceUnavailable"}

    def __init__(self, topic_arn):
        self.topic_arn = topic_arn
        self.region = topic_arn.split(":")[3]
        self.fifo = topic_arn.endswith(".fifo")
        self.secrets = ()
        self._client = None

    def send(self, message, text, timeout):
        from botocore.exceptions import (
            BotoCoreError,
            ClientError,
            NoCredentialsError,
            PartialCredentialsError,
        )

        import dynamo

        state = message["state"].upper() if message.get("kind") != "test" else "test"
        subject = f"blackout-monitor: power {state} ({message['device']}, {message['sensor']})"
        kwargs = {
            "TopicArn": self.topic_arn,
            "Message": text,
            "Subject": subject.encode("ascii", "replace").decode()[:100],
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": str(message[name])}
                for name in ("device", "sensor", "state")
            },
        }
        if self.fifo:
            kwargs["MessageGroupId"] = f"{message['device']}-{message['sensor']}"
            kwargs["MessageDeduplicationId"] = message["id"]
        try:
            self._client = self._client or dynamo.aws_client("sns", region=self.region, read_timeout=5)
            answer = self._client.publish(**kwargs)
        except (NoCredentialsError, PartialCredentialsError):
            return Outcome(False, "no AWS credentials found", rejected=True)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            text = _one_line(f"{code}: {error.response.get('Error', {}).get('Message', '')}", 200)
            transient = code in self.THROTTLED or status >= 500 or status == 429
            return Outcome(False, text, rejected=not transient)
        except (BotoCoreError, ConfigError) as error:
            return Outcome(False, _one_line(error, 200))
        return Outcome(True, f"sent (MessageId {answer.get('MessageId', '?')})")


def channels_from_config(config):
    """The configured channels; ConfigError when Telegram is only half configured."""
    channels = []
    token, chat = config.get("telegram_token"), config.get("telegram_chat_id")
    if token and chat is None:
        raise ConfigError("telegram_token is set but telegram_chat_id is not: set both (README, Notifications)")
    if chat is not None and not token:
        raise ConfigError("telegram_chat_id is set but telegram_token is not: set both (README, Notifications)")
    if token:
        channels.append(Telegram(token, chat, config.get("telegram_api_url") or "https://api.telegram.org"))
    if config.get("webhook_url"):
        channels.append(Webhook(config["webhook_url"]))
    if config.get("sns_topic_arn"):
        channels.append(Sns(config["sns_topic_arn"]))
    return channels


# --- sending the queue ----------------------------------------------------------------------

def _load_channel_states(directory):
    try:
        states = _read_json(directory / "channels.json")
        return {name: value for name, value in states.items() if isinstance(value, dict)}
    except (OSError, ValueError):
        return {}


def _backoff_seconds(failures):
    return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** max(0, failures - 1))


def send_queue(buffer_dir, channels, zone=None, budget=SEND_BUDGET_SECONDS, clock=utc_now,
               monotonic=time.monotonic):
    """Send queued notifications, oldest first, to each channel that hasn't acknowledged them.

    A channel that fails stops for this run (later messages must not overtake the one it
    failed) and backs off; the other channels carry on. Never raises for channel failures.
    Returns the number of deliveries acknowledged.
    """
    directory = notify_dir(buffer_dir)
    queue = directory / "queue"
    if not channels or not queue.is_dir():
        return 0
    deadline = monotonic() + budget
    delivered = 0
    with _lock(directory / ".send.lock") as locked:
        if not locked:
            log.info("another process is sending notifications")
            return 0
        messages = []
        for path in _json_files(queue):
            try:
                messages.append((path, _load_message(path)))
            except FileNotFoundError:
                continue
            except (OSError, ValueError, UnicodeDecodeError) as error:
                _quarantine(path, str(error))
        if not messages:
            return 0
        messages.sort(key=lambda item: (_parse_iso(item[1]["at"]), item[0].name))
        channel_states = _load_channel_states(directory)
        states_before = json.dumps(channel_states, sort_keys=True)
        for channel in channels:
            state = channel_states.get(channel.name, {})
            next_attempt = state.get("next_attempt")
            if next_attempt and _parse_iso(next_attempt) > clock():
                log.info("notifications via %s wait until %s (backing off)", channel.name,
                         clock_text(_parse_iso(next_attempt)))
                continue
            for path, message in messages:
                if channel.name in message["delivered"] or channel.name in message["gave_up"]:
                    continue
                left = deadline - monotonic()
                if left < 1.0:
                    log.info("notification time budget spent; the rest waits for the next run")
                    break
                now = clock()
                text = message_text(message, zone, sent_at=now)
                outcome = channel.send(message, text, timeout=min(HTTP_TIMEOUT_SECONDS, left))
                if outcome.ok:
                    message["delivered"][channel.name] = _iso(now)
                    _write_json(queue, path.name, message)
                    channel_states.pop(channel.name, None)
                    state = {}
                    delivered += 1
                    log.info("notified via %s: %s", channel.name, text)
                    continue
                failures = state.get("failures", 0) + 1
                if outcome.rejected:
                    count = message["rejections"].get(channel.name, 0) + 1
                    message["rejections"][channel.name] = count
                    wait = max(REJECTED_RETRY_SECONDS, outcome.retry_after or 0)
                    if count >= MAX_REJECTIONS:
                        message["gave_up"][channel.name] = outcome.detail
                        log.error("%s rejected the notification %d times, giving it up (%s): %s",
                                  channel.name, count, outcome.detail, text)
                    else:
                        log.error("%s rejected the notification (%s); attempt %d of %d, next in %d min",
                                  channel.name, outcome.detail, count, MAX_REJECTIONS, wait // 60)
                    _write_json(queue, path.name, message)
                else:
                    wait = max(_backoff_seconds(failures), outcome.retry_after or 0)
                    waiting = sum(channel.name not in m["delivered"] and channel.name not in m["gave_up"]
                                  for _path, m in messages)
                    log.warning("notification via %s not sent (%s); %d waiting, next attempt in %ds",
                                channel.name, outcome.detail, waiting, wait)
                state = {"failures": failures, "last_error": outcome.detail,
                         "next_attempt": _iso(clock() + dt.timedelta(seconds=wait)),
                         "failing_since": state.get("failing_since") or _iso(now)}
                channel_states[channel.name] = state
                break
        names = {channel.name for channel in channels}
        for path, message in messages:
            if not names <= set(message["delivered"]) | set(message["gave_up"]):
                continue
            if message["gave_up"]:
                _quarantine(path, "given up by " + ", ".join(sorted(message["gave_up"])))
            else:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
        with contextlib.suppress(OSError):
            filebuffer._fsync_dir(queue)
        if json.dumps(channel_states, sort_keys=True) != states_before:
            _write_json(directory, "channels.json", channel_states)
    return delivered


# --- the minute job's hook ------------------------------------------------------------------

class Notifier:
    """What `minute_job.run` calls: `observe(reading)` after each stored reading, `finish()` last.

    Live readings (and single `--simulate` readings) are announced through the queue when a
    channel is configured. A `history` run (`--at ... --until ...`) only records what it
    would have sent in notify/simulated/, never sends it. Neither method raises: a failure
    to notify is logged and never costs a reading.
    """

    def __init__(self, config, history=False, clock=utc_now, budget=SEND_BUDGET_SECONDS):
        self.config = config
        self.directory = notify_dir(config["buffer_dir"])
        self.channels = channels_from_config(config)
        self.zone = _zone(config.get("timezone"))
        self.notify_after = config.get("notify_after") or 1
        self.history = history
        self.clock = clock
        self.budget = budget
        self.states = {}  # history: (device, sensor) -> state, saved by finish()
        self.simulated = 0
        self.failed = False

    def observe(self, reading):
        if self.failed or "reading" not in reading.values:
            return
        try:
            if self.history:
                self._observe_history(reading)
            else:
                self._observe_live(reading)
        except Exception as error:  # never let notifications cost the reading
            self.failed = True
            log.warning("notifications: can't update the pin state in %s: %s", self.directory, error)

    def _advance(self, state, reading):
        value = reading.values["reading"]
        if state is None:
            return new_state(reading.device, reading.sensor, value, reading.ts), None, True
        if reading.ts <= _parse_iso(state["last_ts"]):
            log.info("notifications: reading at %s is not newer than the last one (%s): state unchanged",
                     _iso(reading.ts), state["last_ts"])
            return state, None, False
        state, message = advance(state, value, reading.ts, self.notify_after)
        return state, message, True

    def _observe_live(self, reading):
        key = (reading.device, reading.sensor)
        with _lock(self.directory / f".state-{key[0]}-{key[1]}.lock", LOCK_WAIT_SECONDS) as locked:
            if not locked:
                log.warning("notifications: pin state of %s busy; this reading is not compared", key)
                return
            state = load_state(self.directory, *key)
            recovered = bool(state and state.get("outbox"))
            if recovered:  # a run died after deciding to announce, before queueing: queue it now
                self._queue(state["outbox"])
                state["outbox"] = []
            state, message, changed = self._advance(state, reading)
            if message is not None:
                message["queued_at"] = _iso(self.clock())
                if self.channels:
                    # the transition and its message are committed together (the outbox), then
                    # queued: a crash in between can neither lose the message nor announce twice
                    self._save_state(dict(state, outbox=[message]))
                    self._queue([message])
                    log.info("queued: %s", message_text(message, self.zone))
                else:
                    log.info("%s (no notification channel configured)", message_text(message, self.zone))
            if changed or recovered or message is not None:
                self._save_state(state)

    def _save_state(self, state):
        _write_json(self.directory, _state_path(self.directory, state["device"], state["sensor"]).name, state)

    def _queue(self, messages):
        for message in messages:
            if self._find(message["id"]) is None:
                _write_json(self.directory / "queue", _message_name(message), message)

    def _find(self, message_id):
        for sub in ("queue", "bad"):
            for path in _json_files(self.directory / sub):
                if path.stem.endswith(message_id):
                    return path
        return None

    def _observe_history(self, reading):
        key = (reading.device, reading.sensor)
        if key not in self.states:
            self.states[key] = load_state(self.directory, *key)
        state, message, _changed = self._advance(self.states[key], reading)
        self.states[key] = state
        if message is not None:
            _write_json(self.directory / "simulated", _message_name(message), message)
            self.simulated += 1

    def finish(self, send=True):
        """Save a history run's states, then send the queue; `send=False` while the link is
        known to be down (minute_job): the messages wait, no channel's backoff grows."""
        try:
            if self.history and self.states and not self.failed:
                for (device, sensor), state in self.states.items():
                    if state is not None:
                        self._save_state(state)
                if self.simulated:
                    log.info("%d notifications of the simulated history written to %s, not sent "
                             "(python notify.py list shows them)", self.simulated, self.directory / "simulated")
            if send:
                send_queue(self.config["buffer_dir"], self.channels, self.zone, self.budget, self.clock)
        except Exception as error:
            log.warning("notifications: %s: %s", type(error).__name__, error)


# --- --test-notify ------------------------------------------------------------------------

def test_notify(config, out=None, clock=utc_now):
    """Send one test message to every configured channel; one line each. Returns 0 or 1."""
    channels = channels_from_config(config)
    if not channels:
        raise ConfigError("no notification channel configured: set telegram_token and telegram_chat_id, "
                          "webhook_url or sns_topic_arn (README, Notifications)")
    zone = _zone(config.get("timezone"))
    now = clock()
    pin = config.get("pin")
    message = {
        "kind": "test", "id": str(uuid.uuid4()), "device": config["device"],
        "sensor": str(pin) if pin is not None else "test", "state": "test", "at": _iso(now),
        "previous_state": None, "duration_minutes": None, "queued_at": _iso(now),
    }
    text = message_text(message, zone)
    out = out or sys.stdout
    failed = 0
    directory = notify_dir(config["buffer_dir"])
    for channel in channels:
        outcome = channel.send(message, text, timeout=HTTP_TIMEOUT_SECONDS)
        verdict = "ok" if outcome.ok else "FAILED"
        print(f"{channel.name}: {verdict}: {outcome.detail}", file=out)
        (log.info if outcome.ok else log.error)("test notification via %s: %s", channel.name, outcome.detail)
        failed += not outcome.ok
        if outcome.ok:
            _clear_backoff(directory, channel.name)
    return 1 if failed else EXIT_OK


def _clear_backoff(directory, name):
    """A channel that just worked is tried again at once by the next run."""
    with contextlib.suppress(OSError):
        if not (directory / "channels.json").exists():
            return
        with _lock(directory / ".send.lock") as locked:
            states = _load_channel_states(directory)
            if locked and states.pop(name, None) is not None:
                _write_json(directory, "channels.json", states)


# --- reading the queue: status, demo --------------------------------------------------------

def _messages_in(directory):
    messages = []
    for path in _json_files(directory):
        with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
            messages.append(_load_message(path))
    return sorted(messages, key=lambda message: _parse_iso(message["at"]))


def describe(buffer_dir, timezone=None):
    """Text lines of the notifications waiting in the queue and those of simulated history."""
    directory = notify_dir(buffer_dir)
    zone = _zone(timezone)
    lines = []
    for sub, title in (("simulated", "would have been sent for the simulated history (never sent)"),
                       ("queue", "waiting to be sent"), ("bad", "given up by a channel (notify/bad)")):
        messages = _messages_in(directory / sub)
        if not messages:
            continue
        lines.append(f"{len(messages)} notification{'s' if len(messages) != 1 else ''} {title}:")
        for message in messages:
            text = message_text(message, zone)
            undelivered = sorted(set(message["gave_up"]) | set(message["rejections"]))
            if sub != "simulated" and (message["delivered"] or undelivered):
                text += f"  [delivered: {', '.join(sorted(message['delivered'])) or 'none'}]"
            lines.append(f"  {text}")
    if not lines:
        lines.append(f"no notifications in {directory}")
    return lines


def status_lines(buffer_dir, device=None, now=None):
    """What `dynamo.py status` shows: each pin's state and since when, the queue, the channels."""
    directory = notify_dir(buffer_dir)
    now = now or utc_now()
    for path in _json_files(directory):
        if not path.name.startswith("state-"):
            continue
        try:
            state = _read_json(path)
            if device and state.get("device") != device:
                continue
            since = clock_text(_parse_iso(state["since"]), None, now)
            last = clock_text(_parse_iso(state["last_ts"]), None, now)
            line = (f"device {state['device']} pin {state['sensor']}: power {STATES[state['state']].upper()} "
                    f"{'since' if state.get('since_known') else 'since at least'} {since} (last reading {last})")
            candidate = state.get("candidate")
            if candidate:
                line += (f"; {STATES[candidate['value']].upper()} for {candidate['count']} reading(s) since "
                         f"{clock_text(_parse_iso(candidate['since']), None, now)}, not yet announced")
        except (OSError, ValueError, KeyError, TypeError) as error:
            line = f"pin state {path.name} unreadable: {error}"
        yield line
    waiting = _messages_in(directory / "queue")
    bad = len(_json_files(directory / "bad"))
    if waiting or bad or (directory / "queue").is_dir():
        oldest = f", oldest from {clock_text(_parse_iso(waiting[0]['at']), None, now)}" if waiting else ""
        yield f"notifications: {len(waiting)} waiting{oldest}; {bad} given up (in {directory / 'bad'})"
    for name, state in sorted(_load_channel_states(directory).items()):
        with contextlib.suppress(KeyError, ValueError, TypeError):
            yield (f"notification channel {name}: failing since "
                   f"{clock_text(_parse_iso(state['failing_since']), None, now)} ({state['failures']} attempts), "
                   f"next attempt {clock_text(_parse_iso(state['next_attempt']), None, now)}: {state['last_error']}")


# --- CLI: python notify.py list --------------------------------------------------------------

def main(argv=None):
    parser = ArgumentParser(prog="notify.py", description="Show queued and simulated notifications.")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    listing = commands.add_parser("list", help="queued, given-up and simulated notifications as text")
    add_config_flags(listing, ("buffer_dir", "timezone"))
    args = parser.parse_args(argv)
    config = load_config(args, ("buffer_dir", "timezone"))
    for line in describe(config["buffer_dir"], config["timezone"]):
        print(line)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_cli(main))
