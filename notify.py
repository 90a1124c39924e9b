"""Outage and restore notifications of the Pi: the pin's state and a durable queue.

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

The queue is tried whether or not DynamoDB is reachable, each channel with its own backoff. A
message of a silence whose story the watchdog (watchdog.py) delivered on a channel is settled
there without being sent (`watchdog_told`); on a channel that got only the watchdog's 'silent'
it is held a while for that story (`Notifier._watchdog_hand_off`, fed by read_pin.py with the
watchdog's state in DynamoDB). The channels (Telegram, webhook, SNS, Apprise) are in
channels.py, imported only when something is queued; the texts in messages.py, which the
watchdog shares. Only the standard library is imported here.
"""

import contextlib
import datetime as dt
import json
import logging
import os
import sys
import time
import uuid
from pathlib import Path

import filebuffer
from messages import SCHEDULE_KEYS, clock_text, iso, message_text, parse_iso, schedule_fields, schedule_windows, time_zone
from utils import CHANNEL_KEYS, EXIT_OK, NOT_MAILED, ArgumentParser, ConfigError, add_config_flags
from utils import channels_configured, check_channel_config, load_config, run_cli, utc_now

log = logging.getLogger("notify")

KEYS = ("notify_after",) + CHANNEL_KEYS + ("timezone",) + SCHEDULE_KEYS
FORMAT_VERSION = 1
NOTIFY_DIR = "notify"
SUFFIX = ".json"
SEND_BUDGET_SECONDS = 15.0     # what a minute job spends sending after its flush, at most
BACKOFF_FIRST_SECONDS = 30     # transient failures: 30 s, 1, 2, 4, then every 5 min
BACKOFF_MAX_SECONDS = 300
REJECTED_RETRY_SECONDS = 600   # a 4xx (bad token, unknown chat) is retried every 10 min...
MAX_REJECTIONS = 6             # ...and after 6 rejections that channel gives the message up
LOCK_WAIT_SECONDS = 3.0
STALE_TEMP_SECONDS = 120
ID_NAMESPACE = uuid.UUID("5f0e4b8e-6a43-4c1e-9b1e-2f4f2a7c9d10")
WATCHDOG_HOLD = dt.timedelta(minutes=20)  # see Notifier._watchdog_hand_off
STATES = {0: "off", 1: "on"}


# --- the pin's state (pure) -----------------------------------------------------------------

def new_state(device, sensor, value, ts):
    """The state recorded from the first reading ever: no announcement, duration unknown."""
    return {
        "format": FORMAT_VERSION, "device": device, "sensor": sensor,
        "epoch": uuid.uuid4().hex, "seq": 0,
        "state": value, "since": iso(ts), "since_known": False, "last_ts": iso(ts),
        "candidate": None,
    }


def advance(state, value, ts, notify_after):
    """Feed one reading to the state machine. Returns (new state, announcement or None).

    A value different from the announced state starts (or extends) a candidate run; when the
    run reaches `notify_after` readings the change is announced as of the run's first reading.
    The announced state's value again ends the candidate: a shorter flap says nothing.
    """
    state = dict(state)
    state["last_ts"] = iso(ts)
    if value == state["state"]:
        state["candidate"] = None
        return state, None
    candidate = state.get("candidate")
    if candidate and candidate["value"] == value:
        candidate = dict(candidate, count=candidate["count"] + 1)
    else:
        candidate = {"value": value, "since": iso(ts), "count": 1}
    if candidate["count"] < notify_after:
        state["candidate"] = candidate
        return state, None
    at = parse_iso(candidate["since"])
    duration = None
    if state.get("since_known"):
        duration = max(0, round((at - parse_iso(state["since"])).total_seconds() / 60))
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
        # the state came from the first reading ever: it held since then at least
        "off_since_at_least": (state["since"] if not state.get("since_known") and STATES[value] == "on"
                               else None),
        "duration_minutes": duration,
        "queued_at": iso(ts),
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
    at = parse_iso(message["at"])
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
        parse_iso(state["since"]), parse_iso(state["last_ts"])
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
    parse_iso(message["at"]), parse_iso(message["queued_at"])
    for name in ("delivered", "rejections", "gave_up", "watchdog_told"):
        if not isinstance(message.setdefault(name, {}), dict):
            raise ValueError(f"{name} is not an object")
    window = message.get("schedule")
    if window is not None:
        try:
            parse_iso(window["start"]), parse_iso(window["end"])
        except (KeyError, TypeError, ValueError, AttributeError) as error:  # the message is still sent, without it
            log.warning("notification file %s: its schedule window is unreadable (%s)", path.name, error)
            del message["schedule"]
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


# --- sending the queue ----------------------------------------------------------------------

def _load_channel_states(directory):
    try:
        states = _read_json(directory / "channels.json")
        return {name: value for name, value in states.items() if isinstance(value, dict)}
    except (OSError, ValueError):
        return {}


def _backoff_seconds(failures):
    return min(BACKOFF_MAX_SECONDS, BACKOFF_FIRST_SECONDS * 2 ** max(0, failures - 1))


def _settled(message):
    """The channels done with `message`: acknowledged it, gave it up, or were told its outage
    by the watchdog (its delivered story replaces the Pi's message there)."""
    return set(message["delivered"]) | set(message["gave_up"]) | set(message["watchdog_told"])


def send_queue(buffer_dir, channels, zone=None, budget=SEND_BUDGET_SECONDS, clock=utc_now,
               monotonic=time.monotonic, held=None, link_down=False):
    """Send queued notifications, oldest first, to each channel that hasn't acknowledged them.

    A channel that fails stops for this run (later messages must not overtake the one it
    failed) and backs off; the other channels carry on. `held` ({message id: {channel name}})
    stops a channel at a message whose story the watchdog is about to deliver there (no
    backoff). `link_down`: DynamoDB is known unreachable, the internet likely too, so a channel's
    transient failure is logged without a cron mail. Never raises for channel failures.
    Returns the number of deliveries acknowledged.
    """
    from channels import HTTP_TIMEOUT_SECONDS

    held = held or {}
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
        messages.sort(key=lambda item: (parse_iso(item[1]["at"]), item[0].name))
        channel_states = _load_channel_states(directory)
        states_before = json.dumps(channel_states, sort_keys=True)
        for channel in channels:
            state = channel_states.get(channel.name, {})
            next_attempt = state.get("next_attempt")
            if next_attempt and parse_iso(next_attempt) > clock():
                log.info("notifications via %s wait until %s (backing off)", channel.name,
                         clock_text(parse_iso(next_attempt)))
                continue
            for path, message in messages:
                if channel.name in _settled(message):
                    continue
                if channel.name in held.get(message["id"], ()):
                    log.info("notification via %s waits for the watchdog's story of its outage", channel.name)
                    break
                left = deadline - monotonic()
                if left < 1.0:
                    log.info("notification time budget spent; the rest waits for the next run")
                    break
                now = clock()
                text = message_text(message, zone, sent_at=now)
                outcome = channel.send(message, text, timeout=min(HTTP_TIMEOUT_SECONDS, left))
                if outcome.ok:
                    message["delivered"][channel.name] = iso(now)
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
                    waiting = sum(channel.name not in _settled(m) for _path, m in messages)
                    log.warning("notification via %s not sent (%s); %d waiting, next attempt in %ds",
                                channel.name, outcome.detail, waiting, wait, extra=NOT_MAILED if link_down else None)
                state = {"failures": failures, "last_error": outcome.detail,
                         "next_attempt": iso(clock() + dt.timedelta(seconds=wait)),
                         "failing_since": state.get("failing_since") or iso(now)}
                channel_states[channel.name] = state
                break
        names = {channel.name for channel in channels}
        for path, message in messages:
            if not names <= _settled(message):
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

    def __init__(self, config, history=False, clock=utc_now, budget=SEND_BUDGET_SECONDS, watchdog_outage=None):
        self.config = config
        self.watchdog_outage = watchdog_outage  # () -> watchdog_state.Told or None
        self.directory = notify_dir(config["buffer_dir"])
        check_channel_config(config)
        self.configured = channels_configured(config)
        self._channels = None
        self.zone = time_zone(config.get("timezone"))
        self.notify_after = config.get("notify_after") or 1
        self.history = history
        self.clock = clock
        self.budget = budget
        self.states = {}  # history: (device, sensor) -> state, saved by finish()
        self.simulated = 0
        self.failed = False

    @property
    def channels(self):
        """The channels, made (and channels.py imported) only when something is to be sent."""
        if self._channels is None:
            from channels import channels_from_config

            self._channels = channels_from_config(self.config) if self.configured else []
        return self._channels

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
        if reading.ts <= parse_iso(state["last_ts"]):
            log.info("notifications: reading at %s is not newer than the last one (%s): state unchanged",
                     iso(reading.ts), state["last_ts"])
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
                message["queued_at"] = iso(self.clock())
                message.update(self._schedule(message))
                if self.configured:
                    # the transition and its message are committed together (the outbox), then
                    # queued: a crash in between can neither lose the message nor announce twice
                    self._save_state(dict(state, outbox=[message]))
                    self._queue([message])
                    log.info("queued: %s", message_text(message, self.zone))
                else:
                    log.info("%s (no notification channel configured)", message_text(message, self.zone))
            if changed or recovered or message is not None:
                self._save_state(state)

    def _schedule(self, message):
        """{"schedule": the outage's planned window or None} for a power message, {} when no
        schedule is configured or it can't be read. Read once, when the message is queued, from
        the schedule's local cache only (the internet is likely down with the power)."""
        if not self.config.get("schedule_ics"):
            return {}
        try:
            began = message["at"] if message["state"] == "off" else (
                message.get("previous_since") or message.get("off_since_at_least"))
            if not began:  # a restore whose outage start is unknown: no window to hold it to
                return {}
            began = parse_iso(began)
            windows = schedule_windows(self.config, began - dt.timedelta(days=1), began + dt.timedelta(days=1),
                                       fetch=False, now=self.clock())
            return schedule_fields(windows, began)
        except Exception as error:  # never let the schedule cost the message
            log.warning("notifications: the schedule's window of a message: %s: %s", type(error).__name__, error)
            return {}

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

    def _waiting(self):
        """(path, message) of the queue's files, oldest first; [] without importing channels."""
        waiting = []
        for path in _json_files(self.directory / "queue"):
            with contextlib.suppress(OSError, ValueError, UnicodeDecodeError):
                waiting.append((path, _load_message(path)))
        return waiting

    def _watchdog_hand_off(self, waiting):
        """What the watchdog told replaces the Pi's power messages of the same silence, channel
        by channel, and only where it was delivered (watchdog_state.Told):

        - its story of the silence (the 'back' message) was delivered on a channel: the Pi's
          messages of that silence are settled there (recorded in `watchdog_told`), not sent;
        - only its 'silent' message was delivered there: the story follows within minutes of the
          Pi's readings reaching DynamoDB, so the Pi's messages are held on that channel, for
          WATCHDOG_HOLD at most (then sent: the watchdog may have died or failed);
        - elsewhere, or when the watchdog's state can't be read: sent as usual (better twice
          than never).

        Returns {message id: {channel name}} of what is held this run."""
        from channels import channel_id

        powered = [(path, message) for path, message in waiting if message.get("kind") == "power"]
        unsettled = [(path, message) for path, message in powered
                     if {channel.name for channel in self.channels} - _settled(message)]
        if not unsettled:
            return {}
        try:
            told = self.watchdog_outage()
        except Exception as error:  # unreachable, no permission, no table: send as usual
            log.info("notifications: the watchdog's state can't be read (%s); sending as usual", error)
            return {}
        if told is None:
            return {}
        held, now = {}, self.clock()
        for path, message in unsettled:
            if not told.covers(parse_iso(message["at"])):
                continue
            changed = False
            for channel in self.channels:
                if channel.name in _settled(message):
                    continue
                key = channel_id(channel)
                if key in told.back:
                    message.setdefault("watchdog_told", {})[channel.name] = iso(now)
                    changed = True
                    log.info("not sent via %s, the watchdog told this outage there (silent since %s): %s",
                             channel.name, iso(told.since), message_text(message, self.zone))
                elif key in told.silent:
                    held_since = message.setdefault("held_since", iso(now))
                    changed = changed or held_since == iso(now)
                    try:
                        held_for = now - parse_iso(held_since)
                    except (TypeError, ValueError):  # an unreadable mark: hold no longer
                        held_for = WATCHDOG_HOLD
                    if held_for < WATCHDOG_HOLD:
                        held.setdefault(message["id"], set()).add(channel.name)
            if changed:
                _write_json(path.parent, path.name, message)
        return held

    def finish(self, send=True, link_up=True):
        """Save a history run's states, then send the queue (`send=False`: only save). The
        queue is tried whether or not DynamoDB is reachable, each channel with its own backoff;
        `link_up=False` (the link known down, minute_job) only skips asking the watchdog's
        state: its messages are then sent as usual."""
        try:
            if self.history and self.states and not self.failed:
                for (device, sensor), state in self.states.items():
                    if state is not None:
                        self._save_state(state)
                if self.simulated:
                    log.info("%d notifications of the simulated history written to %s, not sent "
                             "(python notify.py list shows them)", self.simulated, self.directory / "simulated")
            if not send or self.history or not self.configured:
                return
            with _lock(self.directory / ".send.lock") as locked:
                waiting = self._waiting() if locked else []
                held = (self._watchdog_hand_off(waiting)
                        if waiting and link_up and self.watchdog_outage is not None else {})
            if waiting:  # nothing queued: channels.py is not even imported
                send_queue(self.config["buffer_dir"], self.channels, self.zone, self.budget, self.clock, held=held,
                           link_down=not link_up)
        except Exception as error:
            log.warning("notifications: %s: %s", type(error).__name__, error)


# --- --test-notify ------------------------------------------------------------------------

def test_notify(config, out=None, clock=utc_now):
    """Send one test message to every configured channel; one line each. Returns 0 or 1."""
    from channels import HTTP_TIMEOUT_SECONDS, channels_from_config

    channels = channels_from_config(config)
    if not channels:
        raise ConfigError("no notification channel configured: set telegram_token and telegram_chat_id, "
                          "webhook_url, sns_topic_arn or apprise_urls (README, Notifications)")
    import apprise_channel

    apprise_channel.check_channels(channels)  # what only Apprise can tell: exit 2, not a FAILED line
    zone = time_zone(config.get("timezone"))
    now = clock()
    pin = config.get("pin")
    message = {
        "kind": "test", "id": str(uuid.uuid4()), "device": config["device"],
        "sensor": str(pin) if pin is not None else "test", "state": "test", "at": iso(now),
        "previous_state": None, "duration_minutes": None, "queued_at": iso(now),
    }
    text = message_text(message, zone)
    out = out or sys.stdout
    failed = 0
    directory = notify_dir(config["buffer_dir"])
    for channel in channels:
        outcome = channel.send(message, text, timeout=HTTP_TIMEOUT_SECONDS)
        verdict = "ok" if outcome.ok else "FAILED"
        print(f"{channel.name}: {verdict}: {outcome.detail}", file=out)
        # the line above is what the user reads; the log keeps it without printing it again
        (log.info if outcome.ok else log.error)("test notification via %s: %s", channel.name, outcome.detail,
                                                extra=NOT_MAILED)
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
    return sorted(messages, key=lambda message: parse_iso(message["at"]))


def describe(buffer_dir, timezone=None):
    """Text lines of the notifications waiting in the queue and those of simulated history."""
    directory = notify_dir(buffer_dir)
    zone = time_zone(timezone)
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


def status_lines(buffer_dir, device=None, now=None, zone=None):
    """What `dynamo.py status` shows: each pin's state and since when, the queue, the channels
    (times in `zone`, UTC when None)."""
    directory = notify_dir(buffer_dir)
    now = now or utc_now()
    for path in _json_files(directory):
        if not path.name.startswith("state-"):
            continue
        try:
            state = _read_json(path)
            if device and state.get("device") != device:
                continue
            since = clock_text(parse_iso(state["since"]), zone, now)
            last = clock_text(parse_iso(state["last_ts"]), zone, now)
            line = (f"device {state['device']} pin {state['sensor']}: power {STATES[state['state']].upper()} "
                    f"{'since' if state.get('since_known') else 'since at least'} {since} (last reading {last})")
            candidate = state.get("candidate")
            if candidate:
                line += (f"; {STATES[candidate['value']].upper()} for {candidate['count']} reading(s) since "
                         f"{clock_text(parse_iso(candidate['since']), zone, now)}, not yet announced")
        except (OSError, ValueError, KeyError, TypeError) as error:
            line = f"pin state {path.name} unreadable: {error}"
        yield line
    waiting = _messages_in(directory / "queue")
    bad = len(_json_files(directory / "bad"))
    if waiting or bad or (directory / "queue").is_dir():
        oldest = f", oldest from {clock_text(parse_iso(waiting[0]['at']), zone, now)}" if waiting else ""
        yield f"notifications: {len(waiting)} waiting{oldest}; {bad} given up (in {directory / 'bad'})"
    for name, state in sorted(_load_channel_states(directory).items()):
        with contextlib.suppress(KeyError, ValueError, TypeError):
            yield (f"notification channel {name}: failing since "
                   f"{clock_text(parse_iso(state['failing_since']), zone, now)} ({state['failures']} attempts), "
                   f"next attempt {clock_text(parse_iso(state['next_attempt']), zone, now)}: {state['last_error']}")


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
