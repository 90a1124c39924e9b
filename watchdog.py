"""The watchdog: says at once when a Pi goes silent, and what happened once it is heard again.

    python watchdog.py [--device NAME ...] [--silent-after MINUTES] [--at ISO8601]

Run it every minute somewhere that stays up: as an AWS Lambda function (`handler`, deployed
from infra/template.yaml) or from cron on any always-on machine. For each watched device
(`watch`, default the `device` key) it looks for a reading of any of its sensors newer than
`silent_after` minutes (the sensors come from the registry the minute jobs write; only Query,
never Scan). A device without one is announced silent, once. When its readings come back, the
readings it buffered during the silence tell what happened, announced once:

    power    some pin reading in the silent window was OFF
    link     pin readings cover the window and all are ON: the internet was down
    unknown  no readings for the window: the Pi itself was down

(it waits up to `silent_after` minutes after readings resume for the window's readings).

The state of each device is one item in the minutes table (dynamo.watchdog_key), written
only with conditional writes. An announcement is first recorded in the item's outbox together
with the decision and a lease of the run that delivers it, then sent with a stable id (the
webhook's Idempotency-Key, the SNS FIFO deduplication id), then marked delivered. Overlapping
runs lose the conditional write and leave it alone; a run that crashed between sending and
recording leaves the lease to expire, and the next run sends again under the same id.
"""

import datetime as dt
import json
import logging
import os
import sys
import threading
import uuid

import dynamo

import untrusted
import watchdog_state
from channels import HTTP_TIMEOUT_SECONDS, channel_id, channels_from_config
from channels import KEYS as CHANNEL_KEYS
from messages import SCHEDULE_KEYS, back_text, duration_text, iso, minutes_between, outage_window, parse_iso
from messages import schedule_windows, silent_text, time_zone
from utils import (
    EXIT_OK,
    NOT_MAILED,
    SECRET_KEYS,
    ArgumentParser,
    ConfigError,
    JobFailed,
    add_config_flags,
    bounded_time,
    load_config,
    run_cli,
    setup_logging,
    utc_now,
)
from watchdog_state import OUTBOX_DAYS, OUTBOX_LIMIT, SKEW_TELL

log = logging.getLogger("watchdog")

KEYS = (("watch", "silent_after", "table_prefix", "log_dir", "timezone", "secrets_parameter") + CHANNEL_KEYS
        + SCHEDULE_KEYS)
CLOCK_SKEW = dt.timedelta(minutes=2)  # a reading stamped later than this after "now" is no sign of life
LOOK_BACK = dt.timedelta(hours=72)     # how far back the last reading before a silence is looked for
LEASE = dt.timedelta(seconds=90)       # a delivering run's hold on an outbox (longer than a run)
MAX_REJECTIONS = 10                    # runs a channel may refuse (4xx) an announcement before it is given up
WORKERS = 16                           # devices checked at once (threads sharing one client)
ID_NAMESPACE = uuid.UUID("0b7e6a52-3c1f-4f7e-a3b5-6d2f0c9e8a41")
# Clock skew: a Pi's stamps are judged against when the watchdog first saw them (see sighting()).
LOOK_AHEAD = dt.timedelta(hours=1)     # a reading stamped up to this far ahead came from the Pi (a clock ahead);
                                       # further is no sign of life (each hour ahead costs a Query a run)
AHEAD_SIGN = dt.timedelta(minutes=1)   # a reading stamped later than now + this: the clock runs ahead
RUN_GAP = dt.timedelta(minutes=2)      # two sightings this close are consecutive runs: the newer reading arrived in between
CONFIRM_SPAN = dt.timedelta(minutes=4)  # a stale stamp not seen before, older than one run past silent_after and
                                       # younger than this past it, is looked at again on the next run (a clock behind?)


class SecretsUnavailable(ConfigError):
    """The secrets parameter can't be read or is not a JSON object of configuration keys."""


# --- what the readings say (pure) ---------------------------------------------------------------

def judge(pins, silent_since, back_ts, silent_after):
    """The verdict on a silent window from the pin readings [(ts, value)] around it.

    `complete` is true when no stretch of the window longer than `silent_after` lacks a pin
    reading (then the Pi was up throughout); `cause` is power (an OFF reading in the window),
    link (complete and all ON) or unknown.
    """
    inside = sorted((ts, value) for ts, value in pins if silent_since < ts <= back_ts)
    times = [silent_since] + [ts for ts, _value in inside] + [back_ts]
    complete = bool(inside) and all(later - earlier <= silent_after for earlier, later in zip(times, times[1:]))
    # the silence ends at the first reading after it: after the last stretch without one (the
    # Pi was down), not at the newest reading the watchdog happened to see when it looked
    ends = [later for earlier, later in zip(times[:-1], times[1:-1]) if later - earlier > silent_after]
    back_ts = ends[-1] if ends else back_ts
    offs = [ts for ts, value in inside if value == 0]
    verdict = {"silent_since": silent_since, "back_ts": back_ts, "complete": complete,
               "off_minutes": len(offs), "off_from": None, "off_until": None,
               "cause": "power" if offs else "link" if complete else "unknown"}
    if offs:
        ordered = sorted(pins)
        start = next(index for index, (ts, _value) in enumerate(ordered) if ts == offs[0])
        while start > 0 and ordered[start - 1][1] == 0:  # the OFF run may have begun before the silence
            start -= 1
        verdict["off_from"] = ordered[start][0]
        verdict["off_until"] = next((ts for ts, value in ordered if ts > offs[-1] and value == 1), None)
    return verdict


def skew_of(state):
    """The estimated skew of the device's clock (its stamps minus the watchdog's clock), or 0."""
    return dt.timedelta(seconds=float((state or {}).get("skew_seconds") or 0))


def skew_text(device, skew):
    """alex_rpi's clock is 30 min ahead: ..."""
    minutes = round(abs(skew.total_seconds()) / 60)
    return (f"{device}'s clock is {duration_text(minutes)} {'ahead' if skew > dt.timedelta(0) else 'behind'}: "
            "the watchdog corrects the times it tells, but the readings are filed under the wrong minutes; "
            "check the Pi's time sync (NTP)")


def corrected(verdict, skew):
    """The verdict with its times moved from the Pi's clock to the watchdog's (for the text only)."""
    return {name: value - skew if isinstance(value, dt.datetime) else value for name, value in verdict.items()}


def sighting(state, latest, now, silent_after):
    """(alive, updates) for a device with no reading fresh by its own stamp; `latest` is its
    newest reading stamped up to LOOK_AHEAD from now.

    The watchdog remembers (seen_ts, seen_at) only while the stamps and its clock disagree: a
    reading it has not seen before is a sign of life whatever its stamp; two of them seen on
    consecutive runs give the skew (the newer one arrived since the last run). A remembered
    reading is judged by when it arrived: its stamp moved by the skew, never later than when
    it was first seen. A healthy device with a right clock is fresh and costs no write."""
    if latest is None:
        return False, {}
    state, skew = state or {}, skew_of(state)
    if iso(latest) != state.get("seen_ts"):
        seen_at = parse_iso(state["seen_at"]) if state.get("seen_at") else None
        updates = {"seen_ts": iso(latest), "seen_at": iso(now)}
        if seen_at is not None and now - seen_at <= RUN_GAP and state.get("seen_ts") and latest > parse_iso(state["seen_ts"]):
            arrived = seen_at + (now - seen_at) / 2  # it arrived since the last run: say half-way
            updates["skew_seconds"] = round((latest - arrived).total_seconds() / 60) * 60
            return True, updates
        arrived = latest - skew
        if latest > now + CLOCK_SKEW or silent_after + dt.timedelta(minutes=1) < now - arrived <= silent_after + CONFIRM_SPAN:
            return True, updates  # a clock ahead, or perhaps behind: seen again on the next run
        return now - arrived <= silent_after, updates
    arrived = min(parse_iso(state["seen_at"]), latest - skew)
    return now - arrived <= silent_after, {}


def skew_announcement(device, state, now):
    """The one announcement of a skewed clock (None when it is small or already told)."""
    skew = skew_of(state)
    told = state.get("skew_told")
    if abs(skew) <= SKEW_TELL or (told is not None and abs(float(told) - skew.total_seconds()) <= SKEW_TELL.total_seconds()):
        return None
    state["skew_told"] = int(skew.total_seconds())
    message = announcement(device, "skew", now, now, skew_text(device, skew))
    message["skew_minutes"] = round(skew.total_seconds() / 60)
    return message


def announcement(device, event, silent_since, at, text, verdict=None):
    """An outbox entry; its id is the same for every run that decides the same event."""
    message = {
        "kind": "watchdog", "device": device, "event": event, "at": iso(at), "silent_since": iso(silent_since),
        "id": str(uuid.uuid5(ID_NAMESPACE, f"{device}/{iso(silent_since)}/{event}")),
        "text": text, "delivered": {}, "rejections": {}, "gave_up": {},
    }
    if verdict is not None:
        message.update(cause=verdict["cause"], off_minutes=verdict["off_minutes"],
                       silent_minutes=minutes_between(silent_since, verdict["back_ts"]))
    return message


class Readings:
    """A device's readings as the decision asks for them; each lookup is a few Query requests
    and is made at most once per run."""

    def __init__(self, client, table, device, now, silent_after, known_sensors=None):
        self.client, self.table, self.device = client, table, device
        self.now, self.silent_after = now, silent_after
        self._sensors = known_sensors or None  # from the state item: no registry Query while all is well
        self._registry_read = False
        self._fresh = self._newest = self._latest = self._latest_items = None

    def sensors(self, from_registry=False):
        """The device's sensors, pins first (they decide, and a fresh one ends the search)."""
        if self._sensors is None or (from_registry and not self._registry_read):
            self._sensors = dynamo.sensors_of(self.client, self.table, self.device)
            self._registry_read = True
        return self._sensors

    def _newest_of(self, sensor, start, end):
        for item in dynamo.minute_range(self.client, self.table, self.device, sensor, start, end,
                                        newest_first=True, limit=1):
            return parse_iso(item["ts"])
        return None

    def fresh(self):
        """The newest reading newer than silent_after minutes before now (and not stamped
        beyond the clock skew after it), or None: the device is silent."""
        if self._fresh is None:
            self._fresh = (None,)
            start, end, asked = self.now - self.silent_after, self.now + CLOCK_SKEW, set()
            for from_registry in (False, True):  # before saying silent, ask the registry for new sensors
                for sensor in self.sensors(from_registry):
                    if sensor in asked:
                        continue
                    asked.add(sensor)
                    ts = self._newest_of(sensor, start, end)
                    if ts is not None and ts > self.now + AHEAD_SIGN:
                        return None  # a clock ahead (its newest in the window is "now" or later,
                        # sent long ago): judged by when its readings arrive (sighting)
                    if ts is not None and start < ts <= end:
                        self._fresh = (ts,)
                        return ts
        return self._fresh[0]

    def newest(self):
        """The newest reading stamped no later than now (+ skew), or None."""
        if self._newest is None:
            self._newest = (self._newest_until(self.now + CLOCK_SKEW),)
        return self._newest[0]

    def latest(self):
        """The newest reading stamped up to LOOK_AHEAD after now (a clock ahead), or None."""
        if self._latest is None:
            self._latest = (self._newest_until(self.now + LOOK_AHEAD),)
        return self._latest[0]

    def _newest_until(self, until):
        """The newest reading stamped no later than `until`: found from the sensors' `latest`
        items however old it is, else looked for within LOOK_BACK."""
        if self._latest_items is None:
            self._latest_items = dynamo.latest_times(self.client, self.table, self.device)
        found = []
        for sensor in self.sensors():
            latest = self._latest_items.get(sensor)
            item = dynamo.newest_reading_from(self.client, self.table, self.device, sensor, latest, until) if latest else None
            found.append(parse_iso(item["ts"]) if item else self._newest_of(sensor, self.now - LOOK_BACK, until))
        found = [ts for ts in found if ts is not None and ts <= until]
        return max(found) if found else None

    def pins(self, since, until):
        """[(ts, value)] of every pin sensor from `silent_after` before `since` to `until`."""
        readings = []
        for sensor in self.sensors():
            if sensor.isdigit():
                readings += [(parse_iso(item["ts"]), item["reading"]) for item in dynamo.minute_range(
                    self.client, self.table, self.device, sensor, since - self.silent_after, until)
                    if "reading" in item]
        return readings


def silence_window(windows, silent_since, now):
    """The planned window a silence falls in (messages.outage_window: the one its start falls
    in, else one in force now), or None."""
    return outage_window(windows, silent_since) or outage_window(windows, now, early=dt.timedelta(0))


def decide(state, readings, now, silent_after, zone=None, schedule=None):
    """The next state of one device and what to announce: (new state or None, [announcements]).

    None means nothing changed (no write). `state` is the stored item (None at first).
    `schedule`: () -> the schedule's windows or None, asked only when a silence or its power outage is told.
    """
    device = readings.device
    phase = state.get("phase", "watching") if state else "watching"
    new = dict(state or {"device": device, "outbox": []})
    skew = skew_of(state)
    if phase in ("watching", "unseen"):
        # a clock known to be off is judged by its sightings: a reading stamped "now" by a clock
        # ahead was sent long ago
        fresh = readings.fresh() if not (state and state.get("seen_ts")) else None
        if fresh is not None:
            if phase == "unseen":
                new.update(phase="watching", last_word=iso(fresh))
                return new, []
            if state and (state.get("seen_ts") or state.get("skew_seconds") or state.get("skew_told")):
                new.update(seen_ts=None, seen_at=None, skew_seconds=None, skew_told=None)  # the clock is right again
                return new, []
            return None, []
        latest = readings.latest()
        alive, updates = sighting(state, latest, now, silent_after)
        if alive:
            new.update(updates)
            if "skew_seconds" in updates and abs(skew_of(new)) <= CLOCK_SKEW:
                new.update(seen_ts=None, seen_at=None, skew_seconds=None, skew_told=None)  # right again
            told = skew_announcement(device, new, now) if phase == "watching" else None
            if phase == "unseen":
                new.update(phase="watching", last_word=iso(latest))
            return (new if updates or told or phase == "unseen" else None), [told] if told else []
        newest = latest
        if newest is None:
            if phase == "unseen":
                return None, []
            log.warning("device %s has no reading in the last %d hours (never seen?): announced when it "
                        "has sent one and then goes silent", device, LOOK_BACK.total_seconds() // 3600)
            new.update(phase="unseen")
            return new, []
        windows = schedule() if schedule is not None else None
        window = silence_window(windows, newest - skew, now) if windows is not None else None
        text = silent_text(device, newest - skew, now, zone, window)
        new.update(phase="silent", silent_since=iso(newest), silent_announced=True, last_word=iso(newest),
                   resumed_at=None, back_ts=None, seen_ts=None, seen_at=None)
        message = announcement(device, "silent", newest, now, text)
        if windows is not None:
            message["schedule"] = window  # the webhook's structured copy; None: not in the schedule
        return new, [message]
    silent_since = parse_iso(state["silent_since"])
    if phase == "silent":
        fresh = readings.fresh()
        if fresh is not None and fresh <= silent_since:
            fresh = None  # stamped "now" by a clock ahead, but sent before the silence
        if fresh is None:  # by its stamp; any reading newer than the silence's is a sign of life too
            latest = readings.latest()
            fresh = latest if latest is not None and latest > silent_since else None
        if fresh is None:
            return None, []
        new.update(phase="resumed", resumed_at=iso(now), back_ts=iso(fresh), last_word=iso(fresh))
    back_ts, resumed_at = parse_iso(new["back_ts"]), parse_iso(new["resumed_at"])
    verdict = judge(readings.pins(silent_since, back_ts), silent_since, back_ts, silent_after)
    if not verdict["complete"] and now < resumed_at + silent_after:
        return (new, []) if phase == "silent" else (None, [])  # the backlog may still be on its way
    told = corrected(verdict, skew)
    windows = schedule() if schedule is not None and told["cause"] == "power" else None
    planned = None if windows is None else {"window": outage_window(windows, told["off_from"])}
    text = back_text(device, told, zone, now, planned)
    new.update(phase="watching", back_ts=iso(verdict["back_ts"]))  # where the silence ended, as told
    message = announcement(device, "back", silent_since, verdict["back_ts"], text, verdict)
    if planned is not None:
        message["schedule"] = planned["window"]  # the power outage's window; None: not in the schedule
    return new, [message]


def bound_outbox(state, outbox, now):
    """`outbox` without the announcements no channel took in OUTBOX_DAYS, nor the oldest beyond
    OUTBOX_LIMIT: a channel that keeps failing must not grow the state item towards DynamoDB's
    400 KB, past which no save succeeds and the device is no longer watched. What is dropped
    is said in one log line and counted in `state` (dropped, dropped_at: `dynamo.py status`)."""
    cutoff = now - dt.timedelta(days=OUTBOX_DAYS)
    kept = [message for message in outbox if parse_iso(message.get("recorded") or message["at"]) >= cutoff]
    kept = kept[-OUTBOX_LIMIT:]
    dropped = len(outbox) - len(kept)
    if dropped:
        state["dropped"] = int(state.get("dropped") or 0) + dropped
        state["dropped_at"] = iso(now)
        log.error("%s: %d announcement(s) dropped undelivered (older than %d days or beyond %d waiting); "
                  "%d dropped in all", state.get("device"), dropped, OUTBOX_DAYS, OUTBOX_LIMIT, state["dropped"])
    return kept


# --- one run --------------------------------------------------------------------------------------

class Run:
    """What every device's check shares: the client, the channels, now, and the lease owner."""

    def __init__(self, config, now, client=None):
        self.client = client or dynamo.aws_client(max_pool_connections=WORKERS)
        self.table = dynamo.table_names(config["table_prefix"])["minutes"]
        self.channels = channels_from_config(config)
        self.zone = time_zone(config.get("timezone"))
        self.silent_after = dt.timedelta(minutes=config["silent_after"])
        self.now = now
        self.owner = uuid.uuid4().hex
        self.config = config
        self._windows = None
        self._windows_lock = threading.Lock()

    def schedule(self):
        """The schedule's windows around now (fetched first when stale: the watchdog's internet
        is up), read once a run and only when a silence is announced; None without a schedule."""
        with self._windows_lock:
            if self._windows is None:
                self._windows = (schedule_windows(self.config, self.now - LOOK_BACK, self.now + dt.timedelta(days=1),
                                                  fetch=True, now=self.now),)
            return self._windows[0]

    def leased_by_another(self, state):
        until = state.get("lease_until")
        return (bool(state.get("outbox")) and until is not None and state.get("lease_owner") != self.owner
                and parse_iso(until) > self.now)

    def check(self, device, state=None, prefetched=False):
        """Decide, record, deliver for one device; returns what happened, one word. `state` is
        the device's state as read in the batch before (`prefetched`), else it is read here."""
        readings = Readings(self.client, self.table, device, self.now, self.silent_after,
                            (state or {}).get("sensors"))
        for attempt in range(3):
            if attempt or not prefetched:
                state = watchdog_state.load_watchdog_state(self.client, self.table, device)
            if state is not None:
                state = untrusted.watchdog_state(state, device)  # BadItem: this device's check only
            version = state["version"] if state else 0
            if state and self.leased_by_another(state):
                log.info("%s: another run is delivering its announcements", device)
                return "busy"
            new, announced = decide(state, readings, self.now, self.silent_after, self.zone, self.schedule)
            if new is None and readings.sensors() and (state or {}).get("sensors") != readings.sensors():
                new = dict(state or {"device": device, "phase": "watching", "outbox": []})
            if new is not None:
                new["sensors"] = readings.sensors()  # the next runs ask no registry while all is well
            if new is None and not (state and state.get("outbox")):
                return "quiet"
            new = new or dict(state)
            for message in announced:
                message["recorded"] = iso(self.now)
            new["outbox"] = bound_outbox(new, list(new.get("outbox") or []) + announced, self.now)
            holding = bool(new["outbox"]) and bool(self.channels)
            new.update(lease_owner=self.owner if holding else None,
                       lease_until=iso(self.now + LEASE) if holding else None)
            if not self.channels:
                for message in new["outbox"]:
                    log.warning("%s (no notification channel configured)", message["text"])
                new["outbox"] = []
            if watchdog_state.save_watchdog_state(self.client, self.table, new, version):
                break
            log.info("%s: its state changed under this run; reading it again", device)
        else:
            return "busy"
        for message in announced:
            log.info("announcing %s", message["text"])
        if new["outbox"]:
            self.deliver(new)
        return announced[-1]["event"] if announced else "delivered" if state and state.get("outbox") else "recorded"

    def deliver(self, state):
        """Send the outbox to each channel in order, then record what was acknowledged."""
        for channel in self.channels:
            key = channel_id(channel)  # deliveries are recorded under the channel's stable id
            for message in state["outbox"]:
                if key in message["delivered"] or key in message["gave_up"]:
                    continue
                outcome = channel.send(message, message["text"], timeout=HTTP_TIMEOUT_SECONDS)
                if outcome.ok:
                    message["delivered"][key] = iso(self.now)
                    if message["event"] in ("silent", "back"):  # the Pi's hand-off is about silences only
                        watchdog_state.record_told(state, message, key, iso(self.now))
                    log.info("sent via %s: %s", channel.name, message["text"])
                    continue
                if outcome.rejected:
                    count = message["rejections"].get(key, 0) + 1
                    message["rejections"][key] = count
                    if count >= MAX_REJECTIONS:
                        message["gave_up"][key] = outcome.detail
                    log.error("%s refused the announcement (%s), %d of %d times: %s", channel.name,
                              outcome.detail, count, MAX_REJECTIONS, message["text"])
                else:
                    log.warning("announcement via %s not sent (%s); the next run tries again: %s",
                                channel.name, outcome.detail, message["text"], extra=NOT_MAILED)
                break  # later announcements must not overtake this one on this channel
        names = {channel_id(channel) for channel in self.channels}
        state["outbox"] = [message for message in state["outbox"]
                           if not names <= set(message["delivered"]) | set(message["gave_up"])]
        state.update(lease_owner=None, lease_until=None)
        if not watchdog_state.save_watchdog_state(self.client, self.table, state, state["version"]):
            log.warning("%s: state changed while this run delivered (lease expired?)", state["device"])


def run(config, now, client=None):
    """Check every watched device; returns {device: what happened}. Raises JobFailed when
    DynamoDB could not be read for some device (the others were still checked)."""
    checker = Run(config, now, client)
    devices = config["watch"]
    outcomes, failures = {}, []
    try:  # every device's state in a few requests (100 a request) rather than one each
        states = watchdog_state.load_watchdog_states(checker.client, checker.table, devices)
    except dynamo.CloudUnreachable as error:
        raise JobFailed(f"DynamoDB unreachable: {error}") from None

    def check(device):
        try:
            return device, checker.check(device, states[device], prefetched=True)
        except dynamo.CloudUnreachable as error:
            return device, error
        except JobFailed as error:
            return device, error
        except untrusted.BadItem as error:  # its state item: this device is not checked, the others are
            untrusted.skip("watchdog state", {"pk": dynamo.watchdog_key(device)[0], "sk": "state"}, error, log)
            return device, "skipped"
        except Exception:  # whatever else one device's items do, the others are still checked
            log.exception("%s: its check failed; the other devices are checked", device)
            return device, "failed"

    if len(devices) == 1:
        results = [check(devices[0])]
    else:
        from concurrent.futures import ThreadPoolExecutor

        with ThreadPoolExecutor(max_workers=min(WORKERS, len(devices))) as pool:
            results = list(pool.map(check, devices))
    for device, outcome in results:
        if isinstance(outcome, Exception):
            failures.append(f"{device}: {outcome}")
        else:
            outcomes[device] = outcome
    if failures:
        raise JobFailed(f"{len(failures)} of {len(devices)} devices not checked: {failures[0]}")
    return outcomes


# --- configuration: flags, environment, secrets ---------------------------------------------------

def secret_environment(name):
    """BLACKOUT_* variables from the JSON object kept in an SSM parameter (SecureString) or,
    for an ARN, a Secrets Manager secret: the channels' secrets never sit in the template."""
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        if name.startswith("arn:"):
            client = dynamo.aws_client("secretsmanager", region=name.split(":")[3])
            text = client.get_secret_value(SecretId=name)["SecretString"]
        else:
            text = dynamo.aws_client("ssm").get_parameter(Name=name, WithDecryption=True)["Parameter"]["Value"]
    except ClientError as error:
        code = error.response.get("Error", {}).get("Code", "")
        raise SecretsUnavailable(f"secrets_parameter {name}: {code}") from None
    except BotoCoreError as error:
        raise JobFailed(f"secrets_parameter {name} can't be read: {error}") from None
    try:
        document = json.loads(text)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise SecretsUnavailable(f"secrets_parameter {name} is not a JSON object of configuration keys")
    unknown = sorted(set(document) - set(SECRET_KEYS))
    if unknown:
        raise SecretsUnavailable(f"secrets_parameter {name} holds {unknown[0]!r}: only {', '.join(SECRET_KEYS)}")
    # a list (apprise_urls) becomes the environment's space-separated form
    return {f"BLACKOUT_{key.upper()}": " ".join(map(str, value)) if isinstance(value, list) else str(value)
            for key, value in document.items()}


def load_watchdog_config(args=None, environ=None):
    """The watchdog's configuration: `watch` defaults to the `device` key; secrets merged in."""
    environ = dict(os.environ if environ is None else environ)
    config = load_config(args, KEYS, environ)
    if config["secrets_parameter"]:
        # the real environment still wins, so a variable can override a stored secret
        config = load_config(args, KEYS, {**secret_environment(config["secrets_parameter"]), **environ})
    if config["watch"] is None:
        config["watch"] = [load_config(args, ("device",), environ)["device"]]
    return config


def build_parser():
    parser = ArgumentParser(prog="watchdog.py", description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", dest="watch", action="append", metavar="NAME",
                        help="a device to watch (repeatable; default: the watch key, else the device key)")
    add_config_flags(parser, ("silent_after", "table_prefix", "log_dir", "timezone") + CHANNEL_KEYS)
    parser.add_argument("--at", metavar="ISO8601", help="check as of this time (UTC without offset), for replays")
    return parser


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_watchdog_config(args)
    now = bounded_time(args.at) if args.at is not None else utc_now()
    setup_logging(config["log_dir"], "watchdog")
    outcomes = run(config, now)
    log.info("checked %d devices: %s", len(outcomes),
             ", ".join(f"{device} {outcome}" for device, outcome in sorted(outcomes.items())))
    return EXIT_OK


def handler(event, context):
    """AWS Lambda entry point (EventBridge schedule): the same check, configured by BLACKOUT_*
    variables and the secrets parameter. An event may carry "at" (ISO 8601) for a replay.
    Errors are raised, so Lambda retries and finally hands the event to the failure destination."""
    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    config = load_watchdog_config()
    at = event.get("at") if isinstance(event, dict) else None
    now = bounded_time(at, "the event's at") if at else utc_now()
    outcomes = run(config, now)
    log.info("checked %d devices", len(outcomes))
    return {"checked": len(outcomes), "at": iso(now),
            "announced": sorted(device for device, outcome in outcomes.items() if outcome in ("silent", "back"))}


if __name__ == "__main__":
    sys.exit(run_cli(main))
