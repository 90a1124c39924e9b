"""A device's status page: one self-contained HTML page and its now.json, from DynamoDB.

    python status_page.py --device NAME --out DIR [--at ISO8601]   # DIR/index.html, DIR/now.json
    python status_page.py new-id --device NAME                    # a fresh page id for config.toml

In the cloud `handler` serves the same behind a Lambda function URL at /<page_id>/ and
/<page_id>/now.json, computed on request: while the Pi is silent the page still answers, and its
state then is the watchdog's view. Anything else is 404.

Three layers: `gather` reads (the days items for the 90 daily bars, the minutes only for the 7
timelines and the 48 hours of the room, the watchdog's state); `summarise` computes (pure, with
aggregation.py's rules); `now_document` and `render_html` write (pure: strings in, strings out,
every string HTML-escaped, no request to another host, readable with scripts off).
"""

import datetime as dt
import html
import json
import logging
import secrets
import sys
from pathlib import Path

from aggregation import (
    DAY,
    MINUTE,
    OFF,
    ON,
    day_window,
    floor_minute,
    is_pin,
    off_runs,
    pin_stats,
    run_minutes,
)
import schedule
from messages import SCHEDULE_KEYS
from utils import (
    EXIT_OK,
    ArgumentParser,
    ConfigError,
    JobFailed,
    add_config_flags,
    load_config,
    parse_time,
    run_cli,
    utc_now,
    zone,
)

log = logging.getLogger("status_page")

KEYS = (("device", "table_prefix", "timezone", "silent_after", "status_page_id", "status_pages")
        + SCHEDULE_KEYS)
TIMELINE_DAYS = 7
BAR_DAYS = 90
OUTAGE_ROWS = 30
ENV_HOURS = 48
LINE_GAP = dt.timedelta(minutes=2)
CHART_STEP = 5  # minutes between the points drawn of the room's 48 hours (2,880 minutes)  # readings further apart are a hole in the line, as in plots.py
# Okabe-Ito, as the notebook's plots: ON bluish green, OFF vermillion, no reading light grey
ON_COLOUR, OFF_COLOUR, UNKNOWN_COLOUR = "#009E73", "#D55E00", "#D3D3D3"
TEMPERATURE_COLOUR, HUMIDITY_COLOUR = "#0072B2", "#56B4E9"
REFRESH_SECONDS = 60
SCHEDULE_AHEAD = dt.timedelta(days=2)  # now.json's next window is looked for this far ahead
MAX_WINDOWS = 500                      # windows read from one item, at most (a Pi's item is untrusted)
MAX_WINDOW = dt.timedelta(days=7)      # a longer "planned outage" is no window: skipped
PLAN_COLOUR, POSSIBLE_COLOUR = "#444444", "#999999"


# --- reading (the only part that talks to DynamoDB) --------------------------------------------

def _valid_pin_minute(item):
    """(minute, value) of a pin's minute item, or None (logged) when the item is malformed."""
    import dynamo

    try:
        value = item["reading"]
        ts = dt.datetime.fromisoformat(item["ts"]).astimezone(dt.timezone.utc)
        if value not in (ON, OFF) or isinstance(value, bool):
            raise ValueError(f"reading {value!r}")
        minute = dynamo.period_start(item["pk"], item["sk"])
        return minute, value, ts
    except (KeyError, TypeError, ValueError) as error:
        log.warning("skipping the malformed minute item %s %s: %s", item.get("pk"), item.get("sk"), error)
        return None


def _valid_env_minute(item):
    import dynamo

    try:
        values = {q: float(item[q]) for q in ("temperature_c", "humidity_pct") if q in item}
        if not values or any(v != v or abs(v) > 10_000 for v in values.values()):
            raise ValueError("no temperature or humidity")
        return dynamo.period_start(item["pk"], item["sk"]), values
    except (KeyError, TypeError, ValueError) as error:
        log.warning("skipping the malformed minute item %s %s: %s", item.get("pk"), item.get("sk"), error)
        return None


DAY_FIELDS = ("on", "off", "unknown", "outages", "longest_outage_minutes", "expected")


def _valid_day(item):
    """{date, on, off, unknown, outages, longest_outage_minutes, expected, windows} of a days
    item, or None; `windows` the schedule it was computed with (stored_windows), None without."""
    import dynamo

    try:
        stats = {name: item[name] for name in DAY_FIELDS}
        if not all(isinstance(v, int) and not isinstance(v, bool) and 0 <= v <= 1500 for v in stats.values()):
            raise ValueError("counts out of range")
        local = dynamo.day_start(item).astimezone(zone(dynamo.day_zone(item)))
        return {"date": local.date(), **stats, "windows": stored_windows(item)}
    except (KeyError, TypeError, ValueError) as error:
        log.warning("skipping the malformed days item %s %s: %s", item.get("pk"), item.get("sk"), error)
        return None


def stored_windows(item):
    """[(start, end, possible)] of an item's `schedule` (definite) and `schedule_possible` pairs of
    ISO 8601 times, or None when it has no `schedule`. A Pi's item is untrusted: a bad pair is
    skipped with a log line, a bad attribute drops them all (logged)."""
    if "schedule" not in item:
        return None
    windows = []
    for name, possible in (("schedule", False), ("schedule_possible", True)):
        pairs = item.get(name)
        if pairs is None and possible:
            continue
        if not isinstance(pairs, list) or len(pairs) > MAX_WINDOWS:
            log.warning("ignoring the schedule of the days item %s %s: %s is not a list of windows",
                        item.get("pk"), item.get("sk"), name)
            return None
        for pair in pairs:
            try:
                if (not isinstance(pair, (list, tuple)) or len(pair) != 2
                        or not all(isinstance(t, str) and len(t) <= 64 for t in pair)):
                    raise ValueError("not a [start, end] pair of times")
                start, end = (dt.datetime.fromisoformat(text) for text in pair)
                if start.tzinfo is None or end.tzinfo is None:
                    raise ValueError("a time without its offset")
                start, end = start.astimezone(dt.timezone.utc), end.astimezone(dt.timezone.utc)
                if not dt.timedelta(0) < end - start <= MAX_WINDOW:
                    raise ValueError("its end is not after its start, or it is longer than a week")
                windows.append((start, end, possible))
            except (TypeError, ValueError, OverflowError) as error:
                log.warning("skipping a bad schedule window of the days item %s %s: %s",
                            item.get("pk"), item.get("sk"), error)
    return sorted(set(windows))


def live_windows(config, start, end, now):
    """[(start, end, possible)] of the configured schedule over [start, end) (schedule.windows,
    refreshed when stale: the page's host is online), or None without a schedule or when it
    can't be read (logged: the page is made without it)."""
    if not config.get("schedule_ics"):
        return None
    try:
        return sorted({(w.start.astimezone(dt.timezone.utc), w.end.astimezone(dt.timezone.utc), bool(w.possible))
                       for w in schedule.windows(config, start, end, fetch=True, now=now)})
    except Exception as error:  # a broken schedule never costs the page
        log.warning("the schedule can't be read (%s: %s): the page is made without it", type(error).__name__, error)
        return None


def gather(client, config, now, timeline_days=TIMELINE_DAYS, bar_days=BAR_DAYS, env_hours=ENV_HOURS):
    """Everything the page shows, read from DynamoDB: a plain dict for `summarise`.

    Requests: the registry (1), the watchdog's state (1), the days items of the months the 90
    days touch (4), one Query per hour of the 7 days' pin minutes (169) and of the 48 hours'
    BME280 minutes (49). Nothing else: no Scan, no other device's key. The Telegram bot asks
    for less (fewer days of minutes, fewer or no days items, less of the room) to pay less.
    """
    import dynamo
    from watchdog_state import load_watchdog_state

    device, local = config["device"], zone(config.get("timezone"))
    tables = dynamo.table_names(config["table_prefix"])
    sensors = dynamo.sensors_of(client, tables["minutes"], device)
    pins = [sensor for sensor in sensors if is_pin(sensor)]
    pin = pins[0] if pins else None
    today = now.astimezone(local).date()
    timeline_start, _ = day_window(today - DAY * (timeline_days - 1), local)
    pin_minutes, days = [], []
    if pin is not None:
        for item in dynamo.minute_range(client, tables["minutes"], device, pin, timeline_start, now):
            found = _valid_pin_minute(item)
            if found is not None:
                pin_minutes.append(found)
        first_day, month = today - DAY * (bar_days - 1), today.replace(day=1)
        months = []
        while bar_days and month >= first_day.replace(day=1):
            months.append(month)
            month = (month - DAY).replace(day=1)
        for month in reversed(months):
            pk, _sk = dynamo.day_key(device, pin, month)
            for item in dynamo.query_all(client, TableName=tables["days"], KeyConditionExpression="pk = :pk",
                                         ExpressionAttributeValues={":pk": {"S": pk}}):
                found = _valid_day(dynamo.plain(item))
                if found is not None:
                    days.append(found)
    env_minutes = []
    if "bme280" in sensors and env_hours:
        for item in dynamo.minute_range(client, tables["minutes"], device, "bme280",
                                        now - dt.timedelta(hours=env_hours), now):
            found = _valid_env_minute(item)
            if found is not None:
                env_minutes.append(found)
    watchdog = load_watchdog_state(client, tables["minutes"], device)
    return {"device": device, "timezone": local.key, "now": now, "silent_after": config["silent_after"],
            "sensors": sensors, "pin": pin, "pin_minutes": pin_minutes, "days": days, "env_minutes": env_minutes,
            "watchdog": watchdog, "windows": live_windows(config, timeline_start, now + SCHEDULE_AHEAD, now),
            "timeline_days": timeline_days, "bar_days": bar_days, "env_hours": env_hours}


# --- computing (pure) ------------------------------------------------------------------------

def _segments(by_minute, start, end):
    """[(kind, first, end)] runs of 'on', 'off', 'none' (no reading) over the minutes [start, end)."""
    segments, minute = [], start
    while minute < end:
        value = by_minute.get(minute)
        kind = "on" if value == ON else "off" if value == OFF else "none"
        if segments and segments[-1][0] == kind:
            segments[-1][2] = minute + MINUTE
        else:
            segments.append([kind, minute, minute + MINUTE])
        minute += MINUTE
    return [tuple(segment) for segment in segments]


def _parse(text):
    return dt.datetime.fromisoformat(text).astimezone(dt.timezone.utc) if text else None


def summarise(data):
    """The page's content from `gather`'s data: state, today, timelines, days, outages, room."""
    now, local = data["now"], zone(data["timezone"])
    current = floor_minute(now)
    silent_after = dt.timedelta(minutes=data["silent_after"])
    readings = sorted((minute, value) for minute, value, _ts in data["pin_minutes"] if minute <= current)
    by_minute = dict(readings)
    newest_ts = max((ts for _m, _v, ts in data["pin_minutes"] if ts <= now + dt.timedelta(minutes=2)), default=None)
    env = sorted(data["env_minutes"], key=lambda pair: pair[0])
    if env and (newest_ts is None or env[-1][0] > newest_ts):
        newest_ts = max(newest_ts or env[-1][0], env[-1][0])
    runs = off_runs(readings)
    watchdog = data.get("watchdog") or {}

    # the state: silent is the watchdog's view (no reading for silent_after), never a guess
    ever = newest_ts is not None or data["days"] or watchdog.get("silent_since") or data.get("sensors")
    if not ever:
        state, since = "unknown", None
    elif newest_ts is None or now - newest_ts > silent_after:
        state = "silent"
        since = _parse(watchdog.get("silent_since")) if watchdog.get("phase") == "silent" else newest_ts
        since = since or newest_ts
    else:
        last_value = readings[-1][1] if readings else None
        state = {ON: "on", OFF: "off"}.get(last_value, "unknown")
        since = readings[0][0] if readings else None
        for earlier, later in zip(reversed(readings[:-1]), reversed(readings[1:])):
            if earlier[1] != last_value:
                since = later[0]
                break
    last_word = None  # what the power was at the last reading before a silence
    if state == "silent" and readings:
        last_word = "on" if readings[-1][1] == ON else "off"

    timelines = []
    today = now.astimezone(local).date()
    stored = {item["date"]: item for item in data["days"]}
    live = data.get("windows")
    for back in range(data.get("timeline_days", TIMELINE_DAYS) - 1, -1, -1):
        day = today - DAY * back
        start, end = day_window(day, local)
        inside = [(m, v) for m, v in readings if start <= m < end]
        before = [v for m, v in readings if m < start]
        stats = pin_stats(inside, start, end, now, before[-1] if before else None, runs)
        shown_end = min(end, current + MINUTE)
        timelines.append({"date": day, "start": start, "end": end, "hours": (end - start) // dt.timedelta(hours=1),
                          "segments": _segments(by_minute, start, shown_end) if shown_end > start else [],
                          "stats": stats, "windows": day_windows(live, stored.get(day), start, end, day == today)})

    fresh = {t["date"]: t["stats"] for t in timelines}
    days = []
    for back in range(data.get("bar_days", BAR_DAYS) - 1, -1, -1):
        day = today - DAY * back
        stats = fresh.get(day) or stored.get(day)
        if stats is None:  # no item: no reading that day (or not aggregated yet)
            start, end = day_window(day, local)
            stats = {"on": 0, "off": 0, "unknown": (end - start) // MINUTE, "outages": 0}
        counted = stats["on"] + stats["off"]
        days.append({"date": day, "on": stats["on"], "off": stats["off"], "unknown": stats["unknown"],
                     "outages": stats["outages"], "uptime": round(stats["on"] / counted, 4) if counted else None})

    silence = None
    if watchdog.get("silent_since") and watchdog.get("silent_announced"):
        silence = (_parse(watchdog["silent_since"]),
                   None if watchdog.get("phase") == "silent" else _parse(watchdog.get("back_ts")))
    outages = []
    for first, last in reversed(runs):
        lasting = last == readings[-1][0] and state in ("off", "silent")
        item = {"start": first, "end": None if lasting else last + MINUTE, "minutes": run_minutes((first, last)),
                "watchdog": None}
        item["schedule"] = outage_schedule(timelines, first, item["end"])
        if silence and silence[0] <= last + MINUTE and (silence[1] is None or silence[1] >= first):
            item["watchdog"] = silence
        outages.append(item)
        if len(outages) == OUTAGE_ROWS:
            break

    room = None
    if env:
        room = env[-1][1]
    env_start = now - dt.timedelta(hours=data.get("env_hours", ENV_HOURS))
    return {"device": data["device"], "timezone": data["timezone"], "zone": local, "as_of": now,
            "state": state, "since": since, "last_reading": newest_ts, "last_word": last_word,
            "silent_after": data["silent_after"], "room": room, "timelines": timelines, "days": days,
            "outages": outages, "env": [(m, v) for m, v in env if m >= env_start], "env_start": env_start,
            "runs": runs, "silence": silence, "pin": data["pin"],
            "schedule_now": schedule_now(timelines[-1]["windows"], live, now)}


def day_windows(live, item, start, end, today):
    """The schedule's windows overlapping a day [start, end), or None when they are unknown.

    A past day: those stored with its days item (what was known when it was computed), else the
    live schedule's if it has any then (a feed often drops past days: none there is no answer).
    Today: the live schedule's when it has any, else the item's, else the live schedule's none."""
    stored = (item or {}).get("windows")
    found = None if live is None else [window for window in live if window[0] < end and window[1] > start]
    if today:
        chosen = found if found else stored if stored is not None else found
    else:
        chosen = stored if stored is not None else found or None
    return None if chosen is None else _merged([window for window in chosen if window[0] < end and window[1] > start])


def _as_windows(windows):
    """The page's (start, end, possible) triples as schedule.Window, for schedule's rules."""
    return [schedule.Window(start, end, possible, "") for start, end, possible in windows]


def _triple(window):
    return window.start, window.end, window.possible


def _merged(windows):
    """Touching or overlapping windows of one kind as one (schedule.merged), in start order."""
    return sorted(_triple(window) for window in schedule.merged(_as_windows(windows)))


def outage_schedule(timelines, start, end):
    """{"window": (start, end, possible) or None} of an outage [start, end) (end None: still off),
    or None when the schedule of its day is unknown. Its window is the one it overlaps most, a
    definite one before a possible one (as schedule.match_outage)."""
    day = next((t for t in timelines if t["start"] <= start < t["end"]), None)
    if day is None or day["windows"] is None:
        return None
    known = sorted({window for t in timelines if t["windows"] for window in t["windows"]})
    match = schedule.match_outage(_as_windows(known), start, end)
    return {"window": None if match.window is None else _triple(match.window)}


def schedule_now(today, live, now):
    """{"current": window or None, "next": window or None} for now.json; None when no schedule is
    known. A window is joined with those of its kind that touch it (hourly feeds)."""
    windows = sorted(set((today or []) + (live or [])))
    if today is None and live is None:
        return None
    current = [w for w in windows if w[0] <= now < w[1]]
    current = _joined(min(current, key=lambda w: (w[2], w[0])), windows) if current else None
    upcoming = [w for w in windows if w[0] > now and (current is None or w[0] >= current[1])]
    return {"current": current, "next": _joined(upcoming[0], windows) if upcoming else None}


def _joined(window, windows):
    """`window` extended by the later windows of its kind that touch or overlap it (in start order)."""
    start, end, possible = window
    for other in windows:
        if other[2] == possible and other[0] <= end and other[1] > end:
            end = other[1]
    return start, end, possible


def _iso(ts, local):
    return ts.astimezone(local).isoformat() if ts is not None else None


def now_document(view):
    """now.json (SPEC, "The status page")."""
    local, today = view["zone"], view["timelines"][-1]
    stats = today["stats"]
    room = view["room"] or {}
    return {
        "device": view["device"], "timezone": view["timezone"], "as_of": _iso(view["as_of"], local),
        "state": view["state"], "since": _iso(view["since"], local), "last_reading": _iso(view["last_reading"], local),
        "temperature_c": room.get("temperature_c"), "humidity_pct": room.get("humidity_pct"),
        "today": {"date": today["date"].isoformat(), "on": stats["on"], "off": stats["off"],
                  "unknown": stats["unknown"], "outages": stats["outages"],
                  "longest_outage_minutes": stats["longest_outage_minutes"]},
        "days": [{**day, "date": day["date"].isoformat()} for day in view["days"]],
        "outages": [{"start": _iso(o["start"], local), "end": _iso(o["end"], local), "minutes": o["minutes"],
                     **_outage_schedule_fields(o.get("schedule"), local)}
                    for o in view["outages"]],
        **({} if view.get("schedule_now") is None else {"schedule": {
            name: _window_document(window, local) for name, window in view["schedule_now"].items()}}),
    }


def _window_document(window, local):
    return None if window is None else {"start": _iso(window[0], local), "end": _iso(window[1], local),
                                        "possible": window[2]}


def _outage_schedule_fields(schedule, local):
    """An outage's `scheduled` (true, false) and `window` in now.json; nothing when unknown."""
    if schedule is None:
        return {}
    return {"scheduled": schedule["window"] is not None, "window": _window_document(schedule["window"], local)}


# --- writing the page (pure) -------------------------------------------------------------------

def esc(value):
    return html.escape(str(value), quote=True)


def duration(minutes):
    """'45 min', '3 h 5 min', '25 h', '2 d 1 h' (days only from 48 hours: a day reads as its hours)."""
    days, rest = divmod(int(minutes), 1440) if minutes >= 2880 else (0, int(minutes))
    hours, mins = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h" if hours else f"{days} d"
    if hours:
        return f"{hours} h {mins} min" if mins else f"{hours} h"
    return f"{mins} min"


def clock(ts, local, with_date=True):
    value = ts.astimezone(local)
    return value.strftime("%d %b %H:%M" if with_date else "%H:%M")


STATE_WORDS = {"on": "Power ON", "off": "Power OFF", "silent": "No word from the Pi", "unknown": "No reading yet"}

CSS = f"""
*{{box-sizing:border-box}}
body{{margin:0;font:16px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#1b1b1b;background:#f6f6f4}}
main{{max-width:760px;margin:0 auto;padding:12px}}
h1{{font-size:1.25rem;margin:.2rem 0 .6rem;overflow-wrap:anywhere}}
h2{{font-size:1.05rem;margin:1.4rem 0 .4rem}}
.card{{border-radius:12px;padding:14px 16px;background:#fff;border-left:10px solid {UNKNOWN_COLOUR}}}
.card.on{{border-left-color:{ON_COLOUR}}} .card.off{{border-left-color:{OFF_COLOUR}}} .card.silent{{border-left-color:#000}}
.state{{font-size:1.6rem;font-weight:700;margin:0}}
.card p{{margin:.25rem 0}}
.muted{{color:#555;font-size:.9rem}}
.legend span{{display:inline-block;margin-right:12px;font-size:.85rem}}
.key{{display:inline-block;width:.9em;height:.9em;vertical-align:-.1em;margin-right:4px;border-radius:2px}}
.k-on{{background:{ON_COLOUR}}} .k-off{{background:{OFF_COLOUR}}} .k-none{{background:{UNKNOWN_COLOUR}}}
.timeline{{margin:.5rem 0 .9rem}}
.timeline h3{{font-size:.95rem;margin:0 0 2px}}
svg{{display:block;width:100%}}
.bar svg{{height:26px;border-radius:4px;background:#fff}}
.seg-on{{fill:{ON_COLOUR}}} .seg-off{{fill:{OFF_COLOUR}}} .seg-none{{fill:{UNKNOWN_COLOUR}}}
.ticks{{position:relative;height:1.1em;font-size:.7rem;color:#555}}
.ticks span{{position:absolute;transform:translateX(-50%)}}
.ticks span:first-child{{transform:none}} .ticks span:last-child{{transform:translateX(-100%)}}
.days svg{{height:120px;background:#fff;border-radius:4px}}
.days a:focus rect,.days a:hover rect{{opacity:.7}}
table{{width:100%;border-collapse:collapse;background:#fff;font-size:.9rem}}
th,td{{text-align:left;padding:4px 6px;border-bottom:1px solid #e4e4e4;vertical-align:top}}
td.n,th.n{{text-align:right;white-space:nowrap}}
tr:target{{background:#fff3c4}}
details{{margin:.5rem 0}}
.chart svg{{height:90px;background:#fff;border-radius:4px}}
.line{{fill:none;stroke-width:2;vector-effect:non-scaling-stroke}}
.shade{{fill:{OFF_COLOUR};opacity:.18}}
.axis{{display:flex;justify-content:space-between;font-size:.7rem;color:#555}}
.plan svg{{height:8px;margin-top:2px;background:#fff}}
.win-definite{{fill:{PLAN_COLOUR}}} .win-possible{{fill:{POSSIBLE_COLOUR}}}
.k-plan{{background:{PLAN_COLOUR}}} .k-possible{{background:{POSSIBLE_COLOUR};height:.45em;vertical-align:.1em}}
.sched{{font-size:.85rem}}
footer{{margin:2rem 0 1rem;font-size:.8rem;color:#555}}
"""

SCRIPT = f"""
(function(){{var words={json.dumps(STATE_WORDS)};
function tick(){{fetch("now.json",{{cache:"no-store"}}).then(function(r){{return r.ok?r.json():null}}).then(function(d){{
if(!d)return;var c=document.getElementById("now");c.className="card "+d.state;
document.getElementById("state").textContent=words[d.state]||d.state;
document.getElementById("as-of").textContent="Updated "+d.as_of.slice(11,16);}}).catch(function(){{}});}}
if(location.protocol!=="file:")setInterval(tick,{REFRESH_SECONDS * 1000});}})();
"""


def now_lines(view):
    """The now card as [(element id, css class, text)]: the page's card and the Telegram bot's
    /status say the same words (one place for them)."""
    local, state = view["zone"], view["state"]
    lines = [("state", "state", STATE_WORDS[state])]
    since, now = view["since"], view["as_of"]
    if state in ("on", "off") and since is not None:
        lines.append(("since", None, f'since {clock(since, local)} ({duration((now - since) // MINUTE)})'))
    elif state == "silent":
        last = view["last_reading"]
        if last is not None:
            lines.append(("since", None, f'silent since {clock(last, local)} ({duration((now - last) // MINUTE)}): '
                                         'the power may be off, or only the internet'))
        word = {"on": "power was ON", "off": "power was OFF"}.get(view["last_word"])
        if word:
            lines.append(("last-word", None, f'Last word from the Pi: {word} at {clock(last, local)}'))
        lines.append((None, "muted", f'The watchdog calls a device silent after {view["silent_after"]} '
                                     'minutes without a reading; the Pi tells what happened when it is back.'))
    if view["room"]:
        parts = []
        if "temperature_c" in view["room"]:
            parts.append(f'{view["room"]["temperature_c"]:.1f} °C')
        if "humidity_pct" in view["room"]:
            parts.append(f'{view["room"]["humidity_pct"]:.0f} % humidity')
        lines.append(("room", None, f'Room: {", ".join(parts)}'))
    planned = view.get("schedule_now")
    if planned and (planned["current"] or planned["next"]):
        window, word = (planned["current"], "until") if planned["current"] else (planned["next"], "next")
        kind = "possible outage" if window[2] else "scheduled outage"
        text = f'{kind.capitalize()} now: {_span(window, local)}' if word == "until" else f'Next {kind}: {_span(window, local)}'
        lines.append(("schedule-now", None, text))
    today = view["timelines"][-1]["stats"]
    lines.append(("today", None, f'Today: ON {duration(today["on"])}, OFF {duration(today["off"])}, '
                                 f'no reading {duration(today["unknown"])}; {today["outages"]} outage'
                                 f'{"" if today["outages"] == 1 else "s"}'
                                 + (f', the longest {duration(today["longest_outage_minutes"])}'
                                    if today["longest_outage_minutes"] else "")))
    lines.append(("as-of", "muted", f'Updated {clock(now, local, with_date=False)} ({view["as_of"].astimezone(local).tzname()})'))
    return lines


def _now_card(view):
    paragraphs = []
    for name, css, text in now_lines(view):
        attributes = (f' class="{css}"' if css else "") + (f' id="{name}"' if name else "")
        paragraphs.append(f"<p{attributes}>{esc(text)}</p>")
    paragraphs = "".join(paragraphs)
    return f'<section id="now" class="card {esc(view["state"])}" aria-live="polite">{paragraphs}</section>'


SEGMENT_WORDS = {"on": "ON", "off": "OFF", "none": "no reading"}


def _timeline(timeline, local):
    start, end = timeline["start"], timeline["end"]
    width = (end - start) // MINUTE
    day = timeline["date"]
    stats = timeline["stats"]
    title = f'{day:%a %d %b}' + (f' ({timeline["hours"]} h: the clocks changed)' if timeline["hours"] != 24 else "")
    rects = []
    for kind, first, until in timeline["segments"]:
        x, w = (first - start) // MINUTE, (until - first) // MINUTE
        label = f"{SEGMENT_WORDS[kind]} {clock(first, local, False)}–{clock(until, local, False)}"
        rects.append(f'<rect class="seg seg-{kind}" data-kind="{kind}" data-minutes="{w}" x="{x}" y="0" '
                     f'width="{w}" height="1"><title>{esc(label)}</title></rect>')
    ticks, offset = [], 0
    while offset <= width:  # every 6 local hours; a zone's offsets are whole quarter hours
        local_time = (start + MINUTE * offset).astimezone(local)
        if local_time.minute == 0 and local_time.hour % 6 == 0:
            text = "24:00" if offset == width else f"{local_time:%H:%M}"
            ticks.append(f'<span style="left:{100 * offset / width:.2f}%">{text}</span>')
        offset += 15
    summary = (f'ON {duration(stats["on"])}, OFF {duration(stats["off"])}, no reading {duration(stats["unknown"])}, '
               f'{stats["outages"]} outage{"" if stats["outages"] == 1 else "s"}')
    plan, plan_text = _plan(timeline, local)
    return (f'<div class="timeline" data-date="{day.isoformat()}" data-minutes="{width}">'
            f'<h3>{esc(title)}</h3><div class="bar"><svg viewBox="0 0 {width} 1" preserveAspectRatio="none" '
            f'role="img" aria-label="{esc(title + ": " + summary)}">{"".join(rects)}</svg></div>{plan}'
            f'<div class="ticks" aria-hidden="true">{"".join(ticks)}</div>'
            f'<p class="muted">{esc(summary)}{esc(plan_text)}</p></div>')


def _span(window, local):
    """'27 Oct 18:00–22:00' ('27 Oct 22:00–28 Oct 02:00' across midnight)."""
    start, end = window[0].astimezone(local), window[1].astimezone(local)
    return f"{clock(start, local)}–{clock(end, local, with_date=end.date() != start.date())}"


def outage_schedule_text(outage, local):
    """'scheduled 27 Oct 18:00–22:00', 'in a possible outage …', 'not scheduled'; None when that
    day's schedule is unknown (the page and the Telegram bot say the same)."""
    planned = outage.get("schedule")
    if planned is None:
        return None
    window = planned["window"]
    if window is None:
        return "not scheduled"
    return f'{"in a possible outage" if window[2] else "scheduled"} {_span(window, local)}'


def _window_text(window, local, reference_start, reference_end):
    """'18:00–22:00' (the day's own hours), with dates where the window leaves the day."""
    start, end, _possible = window
    first = clock(start, local, with_date=start < reference_start)
    last = clock(end, local, with_date=end > reference_end)
    return f"{first}–{last}"


def _plan(timeline, local):
    """(the thin band of the day's scheduled windows under its timeline, its text), ('', '')
    when the day's schedule is unknown. Definite windows fill the band, possible ones a thinner
    stripe in its middle: told apart by shape as well as by shade, and in words."""
    windows = timeline.get("windows")
    if windows is None:
        return "", ""
    start, end = timeline["start"], timeline["end"]
    width = (end - start) // MINUTE
    rects, words = [], []
    for window in sorted(windows, key=lambda w: (w[0], w[2])):
        first, until = max(window[0], start), min(window[1], end)
        x, w = (first - start) / MINUTE, (until - first) / MINUTE
        kind = "possible" if window[2] else "definite"
        text = f'{"possible outage" if window[2] else "scheduled outage"} {_window_text(window, local, start, end)}'
        words.append(text)
        y, height = (0.3, 0.4) if window[2] else (0, 1)
        rects.append(f'<rect class="win win-{kind}" data-kind="{kind}" data-minutes="{w:.0f}" x="{x:.0f}" y="{y}" '
                     f'width="{w:.0f}" height="{height}"><title>{esc(text)}</title></rect>')
    label = ("Schedule: " + "; ".join(words)) if words else "Schedule: no outage planned"
    band = (f'<div class="plan"><svg viewBox="0 0 {width} 1" preserveAspectRatio="none" role="img" '
            f'aria-label="{esc(label)}">{"".join(rects)}</svg></div>')
    return band, (". " + label if words else ". Schedule: none")


def _day_text(day):
    uptime = "no reading" if day["uptime"] is None else f'{day["uptime"]:.0%} up'
    return (f'{day["date"]:%a %d %b %Y}: ON {duration(day["on"])}, OFF {duration(day["off"])}, '
            f'no reading {duration(day["unknown"])}; {day["outages"]} outage{"" if day["outages"] == 1 else "s"}, {uptime}')


def _days(days):
    bars = []
    for index, day in enumerate(days):
        total = max(day["on"] + day["off"] + day["unknown"], 1)
        y, parts = 0.0, []
        for kind, minutes in (("none", day["unknown"]), ("off", day["off"]), ("on", day["on"])):
            height = 100 * minutes / total
            if height:
                parts.append(f'<rect class="seg-{kind}" x="{index * 10 + 1}" y="{y:.2f}" width="8" height="{height:.2f}"/>')
            y += height
        bars.append(f'<a href="#d-{day["date"].isoformat()}"><g class="day"><title>{esc(_day_text(day))}</title>'
                    f'{"".join(parts)}</g></a>')
    rows = "".join(
        f'<tr id="d-{d["date"].isoformat()}"><td>{d["date"]:%d %b}</td><td class="n">{d["on"] / 60:.1f}</td>'
        f'<td class="n">{d["off"] / 60:.1f}</td><td class="n">{d["unknown"] / 60:.1f}</td>'
        f'<td class="n">{d["outages"]}</td><td class="n">{"–" if d["uptime"] is None else format(d["uptime"], ".0%")}</td></tr>'
        for d in reversed(days))
    first, last = days[0]["date"], days[-1]["date"]
    return (f'<div class="days"><svg viewBox="0 0 {len(days) * 10} 100" preserveAspectRatio="none" role="img" '
            f'aria-label="Hours ON, OFF and without a reading on each of the last {len(days)} days">{"".join(bars)}</svg>'
            f'<div class="axis" aria-hidden="true"><span>{first:%d %b}</span><span>{last:%d %b}</span></div></div>'
            f'<details><summary>Every day as text (hours)</summary><table><thead><tr><th>Day</th><th class="n">ON</th>'
            f'<th class="n">OFF</th><th class="n">none</th><th class="n">Outages</th><th class="n">Up</th></tr></thead>'
            f'<tbody>{rows}</tbody></table></details>')


def _outages(view):
    local = view["zone"]
    if not view["outages"]:
        return '<p id="no-outages">No outage in the last 7 days.</p>'
    rows = []
    for outage in view["outages"]:
        end = "still off" if outage["end"] is None else clock(outage["end"], local)
        note = ""
        planned = outage_schedule_text(outage, local)
        if planned is not None:
            window = outage["schedule"]["window"]
            kind = "no" if window is None else "possible" if window[2] else "yes"
            note += f'<br><span class="sched" data-scheduled="{kind}">{esc(planned)}</span>'
        if outage["watchdog"]:
            since, back = outage["watchdog"]
            note += (f'<br><span class="muted">The watchdog: silent from {esc(clock(since, local))}'
                    + (f' to {esc(clock(back, local))}' if back else ", still silent") + '</span>')
        rows.append(f'<tr class="outage"><td>{esc(clock(outage["start"], local))}{note}</td><td>{esc(end)}</td>'
                    f'<td class="n duration">{esc(duration(outage["minutes"]))}</td></tr>')
    return ('<table id="outages"><thead><tr><th>Start</th><th>End</th><th class="n">Off for</th></tr></thead>'
            f'<tbody>{"".join(rows)}</tbody></table>')


def _chart(view, quantity, label, unit, colour):
    points = [(m, v[quantity]) for m, v in view["env"] if quantity in v]
    start, width = view["env_start"], ENV_HOURS * 60
    if not points:
        return f'<p>{esc(label)}: no reading in the last {ENV_HOURS} hours.</p>'
    values = [v for _m, v in points]
    low, high = min(values), max(values)
    pad = max((high - low) * 0.1, 0.5)
    low, high = low - pad, high + pad
    lines, current, previous = [], [], None
    for minute, value in points:
        if previous is not None and minute - previous > LINE_GAP:
            lines.append(current)
            current = []
        x = (minute - start) / MINUTE
        current.append(f"{x:.0f},{100 * (high - value) / (high - low):.2f}")
        previous = minute
    lines.append(current)
    # every CHART_STEP-th point of each unbroken line, and its last: a phone's width shows no more
    lines = [line[::CHART_STEP] + ([line[-1]] if (len(line) - 1) % CHART_STEP else []) for line in lines if line]
    paths = "".join(f'<polyline class="line" stroke="{colour}" points="{" ".join(line)}"/>' for line in lines)
    shades = []
    for first, last in view["runs"]:
        x0 = max((first - start) / MINUTE, 0)
        x1 = min((last + MINUTE - start) / MINUTE, width)
        if x1 > x0:
            shades.append(f'<rect class="shade" x="{x0:.0f}" y="0" width="{x1 - x0:.0f}" height="100"/>')
    text = (f'{label}: now {values[-1]:.1f} {unit}, lowest {min(values):.1f}, highest {max(values):.1f} '
            f'in the last {ENV_HOURS} hours')
    local = view["zone"]
    return (f'<div class="chart"><h3 class="muted">{esc(text)}</h3><svg viewBox="0 0 {width} 100" '
            f'preserveAspectRatio="none" role="img" aria-label="{esc(text)}; power outages shaded">{"".join(shades)}{paths}</svg>'
            f'<div class="axis" aria-hidden="true"><span>{esc(clock(start, local))}</span>'
            f'<span>{esc(clock(view["as_of"], local))}</span></div></div>')


def render_html(view):
    """The page: self-contained HTML (inline CSS and SVG, one small optional script)."""
    device = esc(view["device"])
    timelines = "".join(_timeline(t, view["zone"]) for t in reversed(view["timelines"]))
    legend = ('<p class="legend"><span><i class="key k-on"></i>power ON</span><span><i class="key k-off"></i>power OFF'
              '</span><span><i class="key k-none"></i>no reading (the Pi was down or silent)</span>'
              + ('<span><i class="key k-plan"></i>scheduled outage (the band below)</span>'
                 '<span><i class="key k-possible"></i>possible outage</span>'
                 if any(t.get("windows") is not None for t in view["timelines"]) else "")
              + '</p>')
    room = ""
    if view["env"]:
        room = ("<h2>The room, last 48 hours</h2>"
                + _chart(view, "temperature_c", "Temperature", "°C", TEMPERATURE_COLOUR)
                + _chart(view, "humidity_pct", "Humidity", "%", HUMIDITY_COLOUR)
                + '<p class="muted">Shaded: power OFF.</p>')
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width,initial-scale=1">'
            f'<meta name="referrer" content="no-referrer"><meta name="robots" content="noindex">'
            f'<title>{device}: {esc(STATE_WORDS[view["state"]])}</title><style>{CSS}</style></head><body><main>'
            f'<h1>Power at {device}</h1>{_now_card(view)}'
            f'<h2>Today and the 6 days before</h2>{legend}{timelines}'
            f'<h2>The last {len(view["days"])} days</h2>{_days(view["days"])}'
            f'<h2>Outages</h2>{_outages(view)}{room}'
            f'<footer>Times in {esc(view["timezone"])}. <a href="now.json">now.json</a> has the same as data. '
            f'Made by blackout-monitor.</footer></main><script>{SCRIPT}</script></body></html>')


def build(data):
    """(index.html text, now.json dict) of gathered data."""
    view = summarise(data)
    return render_html(view), now_document(view)


# --- page ids, the Lambda handler --------------------------------------------------------------

def new_page_id():
    """An unguessable page id: 144 random bits, URL-safe."""
    return secrets.token_urlsafe(18)


def page_ids(config):
    """{page_id: device} from `status_pages` and the device's `status_page_id`."""
    ids = dict((page_id, device) for device, page_id in (config.get("status_pages") or {}).items())
    if config.get("status_page_id") and config.get("device"):
        ids[config["status_page_id"]] = config["device"]
    return ids


def find_device(ids, page_id):
    """The device of `page_id`, compared in constant time with every known id; None if unknown."""
    import hmac

    found = None
    for known, device in ids.items():
        if hmac.compare_digest(known.encode(), page_id.encode()):
            found = device
    return found


NOT_FOUND = {"statusCode": 404, "headers": {"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"},
             "body": "not found\n"}


def respond(path, config, client, now):
    """The function URL's answer for `path`: the page, its now.json, or 404."""
    parts = path.split("/")
    if len(parts) != 3 or parts[0] or parts[2] not in ("", "now.json") or not parts[1].isascii():
        return NOT_FOUND
    device = find_device(page_ids(config), parts[1])
    if device is None:
        return NOT_FOUND
    page, document = build(gather(client, {**config, "device": device}, now))
    headers = {"cache-control": "no-store", "x-content-type-options": "nosniff", "referrer-policy": "no-referrer",
               "content-security-policy": "default-src 'none'; style-src 'unsafe-inline'; script-src 'unsafe-inline'; "
                                          "connect-src 'self'; img-src data:"}
    if parts[2] == "now.json":
        return {"statusCode": 200, "headers": {**headers, "content-type": "application/json"},
                "body": json.dumps(document, ensure_ascii=False)}
    return {"statusCode": 200, "headers": {**headers, "content-type": "text/html; charset=utf-8"}, "body": page}


def handler(event, context):
    """AWS Lambda entry point behind a function URL (payload 2.0): GET /<page_id>/ or now.json."""
    import dynamo

    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    method = (event.get("requestContext") or {}).get("http", {}).get("method", "GET")
    if method not in ("GET", "HEAD"):
        return {**NOT_FOUND, "statusCode": 405}
    config = load_config(None, KEYS, host_device=False)
    return respond(event.get("rawPath") or "/", config, dynamo.aws_client(), utc_now())


# --- CLI ---------------------------------------------------------------------------------------

def build_parser():
    parser = ArgumentParser(prog="status_page.py", description=__doc__.split("\n\n")[0])
    add_config_flags(parser, ("device", "table_prefix", "timezone", "silent_after"))
    parser.add_argument("--out", metavar="DIR", help="folder to write index.html and now.json into")
    parser.add_argument("--at", metavar="ISO8601", help="the page as of this time (UTC without offset)")
    parser.add_argument("command", nargs="?", choices=("new-id",),
                        help="new-id: print a fresh page id (status_page_id in config.toml)")
    return parser


def write_page(directory, page, document):
    """index.html and now.json into `directory`, each written whole (temp file, rename)."""
    import os

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, text in (("index.html", page), ("now.json", json.dumps(document, indent=1, ensure_ascii=False))):
        temporary = directory / f".{name}.tmp"
        temporary.write_text(text, encoding="utf-8")
        os.replace(temporary, directory / name)
    return directory / "index.html"


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_config(args, KEYS)
    if args.command == "new-id":
        print(new_page_id())
        return EXIT_OK
    if not args.out:
        raise ConfigError("--out DIR is required: the folder to write index.html and now.json into")
    now = parse_time(args.at) if args.at is not None else utc_now()
    import dynamo

    try:
        data = gather(dynamo.aws_client(), config, now)
    except dynamo.CloudUnreachable as error:
        raise JobFailed(f"DynamoDB unreachable: {error}") from None
    page, document = build(data)
    try:
        write_page(args.out, page, document)
    except OSError as error:
        raise JobFailed(f"can't write the page to {args.out}: {error}") from None
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_cli(main))
