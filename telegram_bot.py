"""The Telegram bot: /status, /today, /week, /outages, /page and /help in the configured chats.

    python telegram_bot.py --poll [--once]            # long polling, for a systemd unit (or cron with --once)
    python telegram_bot.py set-webhook --url URL      # registers the function URL with a secret token

In the cloud `handler` answers Telegram's webhook on a Lambda function URL at /telegram.

Only the chats of `telegram_chat_id` are answered, about the devices of `watch` (or `device`);
every other chat gets no answer at all and is logged once. Plain HTTP (urllib), as the Telegram
channel of channels.py: the answers are the status page's own words (status_page.gather,
summarise, now_lines), pictures are drawn with matplotlib when it is installed (text otherwise).
"""

import contextlib
import hmac
import io
import json
import logging
import os
import sys
import uuid
from pathlib import Path

from messages import SCHEDULE_KEYS
from utils import (
    EXIT_OK,
    PROJECT_DIR,
    ArgumentParser,
    ConfigError,
    JobFailed,
    add_config_flags,
    load_config,
    one_line,
    run_cli,
    setup_logging,
    telegram_chats,
    utc_now,
)

log = logging.getLogger("telegram_bot")

KEYS = ("device", "watch", "table_prefix", "timezone", "silent_after", "log_dir", "secrets_parameter",
        "telegram_token", "telegram_chat_id", "telegram_api_url", "telegram_webhook_secret",
        "status_pages", "status_page_id", "status_page_url") + SCHEDULE_KEYS
COMMANDS = {
    "status": "is the power on now",
    "today": "today's outages and totals, with the day as a picture",
    "week": "the last 7 days as a picture, with the totals",
    "outages": "the last 10 outages of the last 7 days and how long each lasted",
    "page": "the link to the status page",
    "help": "this list",
}
ALLOWED_UPDATES = ["message", "channel_post"]  # the only kinds the bot answers
WEBHOOK_PATH = "/telegram"
SECRET_HEADER = "x-telegram-bot-api-secret-token"
MAX_BODY_BYTES = 64 * 1024  # an update with a command is a few hundred bytes
HTTP_TIMEOUT_SECONDS = 10.0
POLL_SECONDS = 50            # getUpdates' long polling (Telegram allows up to 50)
MAX_TEXT = 4000              # Telegram's limit is 4,096 characters a message
OUTAGES_SHOWN = 10
DEFAULT_STATE_DIR = PROJECT_DIR / "telegram-state"


class BotApiError(Exception):
    """The Bot API answered not ok, or could not be reached (the token never in the text)."""


# --- the Bot API (plain HTTP) --------------------------------------------------------------------

def _secrets(config):
    token = config.get("telegram_token") or ""
    return tuple(s for s in (token, token.split(":", 1)[-1], config.get("telegram_webhook_secret")) if s)


def redact(text, config):
    """`text` with the bot's secrets replaced by '***' (channels.redact)."""
    from channels import redact as redact_secrets

    return redact_secrets(text, _secrets(config))


def _multipart(fields, files):
    """(content type, body) of a multipart/form-data request; `files` is {name: (filename, bytes, type)}."""
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, data, kind) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: {kind}\r\n\r\n".encode() + data + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return f"multipart/form-data; boundary={boundary}", b"".join(parts)


def api(config, method, fields=None, files=None, timeout=HTTP_TIMEOUT_SECONDS):
    """Call a Bot API method; its `result`. BotApiError (secrets redacted) when it fails."""
    import urllib.error
    import urllib.request

    url = f'{config["telegram_api_url"].rstrip("/")}/bot{config["telegram_token"]}/{method}'
    if files:
        content_type, body = _multipart({k: v if isinstance(v, str) else json.dumps(v) for k, v in (fields or {}).items()},
                                        files)
    else:
        content_type, body = "application/json", json.dumps(fields or {}).encode()
    request = urllib.request.Request(url, data=body, method="POST",
                                     headers={"Content-Type": content_type, "User-Agent": "blackout-monitor"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read(1 << 20)
    except urllib.error.HTTPError as error:
        with contextlib.suppress(Exception):
            raw = error.read(65536)
            description = json.loads(raw).get("description", "")
            raise BotApiError(one_line(redact(f"{method}: HTTP {error.code}: {description}", config))) from None
        raise BotApiError(one_line(redact(f"{method}: HTTP {error.code}", config))) from None
    except Exception as error:  # URLError, timeouts, resets: the link
        reason = getattr(error, "reason", None) or error
        raise BotApiError(one_line(redact(f"{method}: {type(reason).__name__}: {reason}", config))) from None
    try:
        answer = json.loads(raw)
    except ValueError:
        raise BotApiError(f"{method}: the Bot API's answer is not JSON") from None
    if not isinstance(answer, dict) or not answer.get("ok"):
        description = answer.get("description", "") if isinstance(answer, dict) else ""
        raise BotApiError(one_line(redact(f"{method}: not ok: {description}", config)))
    return answer.get("result")


_BOT_NAMES = {}  # token -> the bot's username (getMe, once per process)


def bot_username(config):
    token = config["telegram_token"]
    if token not in _BOT_NAMES:
        _BOT_NAMES[token] = (api(config, "getMe") or {}).get("username") or ""
    return _BOT_NAMES[token]


# --- reading an update ---------------------------------------------------------------------------

def parse_command(update, config):
    """(chat, command, arguments, reason) of an update: `command` is None when the update holds
    no command for this bot, and `reason` then says why; `chat` is the Telegram chat dict, if any."""
    if not isinstance(update, dict):
        return None, None, "", "not an update object"
    post = update.get("message") or update.get("channel_post")
    if not isinstance(post, dict):
        kinds = sorted(str(k)[:40] for k in update if k != "update_id")
        return None, None, "", f"an update of kind {kinds[0] if kinds else 'none'!r}"
    chat, text = post.get("chat"), post.get("text")
    if not isinstance(chat, dict) or not isinstance(chat.get("id"), int) or isinstance(chat.get("id"), bool):
        return None, None, "", "a message without a chat"
    if not isinstance(text, str) or not text.startswith("/"):
        return chat, None, "", "a message without a command"
    word, _, arguments = text.strip().partition(" ")
    command, _, addressee = word[1:].partition("@")
    if addressee and addressee.lower() != bot_username(config).lower():
        return chat, None, "", f"a command for @{addressee[:40]}"
    return chat, command.lower()[:40], arguments.strip(), None


def allowed(chat, config):
    chats = set(telegram_chats(config.get("telegram_chat_id")))
    return str(chat["id"]) in chats or (isinstance(chat.get("username"), str) and f'@{chat["username"]}' in chats)


# --- the answers ---------------------------------------------------------------------------------

def devices(config):
    return list(config.get("watch") or ([config["device"]] if config.get("device") else []))


def _view(client, config, device, now, **span):
    import status_page

    return status_page.summarise(status_page.gather(client, {**config, "device": device}, now, **span))


SPANS = {  # what each command reads (see gather): as little as it needs
    "status": {"timeline_days": 1, "bar_days": 0, "env_hours": 1},
    "today": {"timeline_days": 1, "bar_days": 0, "env_hours": 0},
    "week": {"timeline_days": 1, "bar_days": 7, "env_hours": 0},
    "outages": {"timeline_days": 7, "bar_days": 0, "env_hours": 0},
}


def status_text(view):
    """The now card's lines. /status reads today's minutes only: a state that held all day says
    so ("since before 00:00"), where the page, reading 7 days, finds the change."""
    from status_page import MINUTE, clock, duration, now_lines

    lines = [text for _name, _css, text in now_lines(view)]
    start, local = view["timelines"][0]["start"], view["zone"]
    if view["state"] in ("on", "off") and view["since"] is not None and view["since"] <= start:
        lines[1] = f'since before {clock(start, local)} (more than {duration((view["as_of"] - start) // MINUTE)})'
    return "\n".join([f'{view["device"]}: {lines[0]}'] + lines[1:])


def _outage_line(outage, local):
    from status_page import clock, duration, outage_schedule_text

    end = "still off" if outage["end"] is None else clock(outage["end"], local, outage["end"].astimezone(local).date()
                                                          != outage["start"].astimezone(local).date())
    planned = outage_schedule_text(outage, local)
    return f'{clock(outage["start"], local)} – {end}: {duration(outage["minutes"])}' + (f" ({planned})" if planned else "")


def today_text(view):
    from status_page import duration

    local, today = view["zone"], view["timelines"][-1]
    stats = today["stats"]
    outages = [o for o in view["outages"] if o["end"] is None or o["end"] > today["start"]]
    lines = [f'{view["device"]}, {today["date"]:%a %d %b} ({view["timezone"]}):',
             f'ON {duration(stats["on"])}, OFF {duration(stats["off"])}, no reading {duration(stats["unknown"])}; '
             f'{stats["outages"]} outage{"" if stats["outages"] == 1 else "s"}'
             + (f', the longest {duration(stats["longest_outage_minutes"])}' if stats["longest_outage_minutes"] else "")]
    lines += [_outage_line(o, local) + (" (it began before midnight)" if o["start"] == today["start"] else "")
              for o in reversed(outages)]
    return "\n".join(lines)


def week_text(view):
    from status_page import _day_text, duration

    days = view["days"]
    on, off, unknown = (sum(d[k] for d in days) for k in ("on", "off", "unknown"))
    outages = sum(d["outages"] for d in days)
    uptime = f", {on / (on + off):.0%} up" if on + off else ""
    return "\n".join([f'{view["device"]}, the last {len(days)} days ({view["timezone"]}):',
                      f'ON {duration(on)}, OFF {duration(off)}, no reading {duration(unknown)}; '
                      f'{outages} outage{"" if outages == 1 else "s"}{uptime}']
                     + [_day_text(day) for day in days])


def outages_text(view):
    shown = view["outages"][:OUTAGES_SHOWN]
    if not shown:
        return f'{view["device"]}: no outage in the last 7 days.'
    return "\n".join([f'{view["device"]}: the last {len(shown)} outage{"" if len(shown) == 1 else "s"} '
                      f'({view["timezone"]}):'] + [_outage_line(o, view["zone"]) for o in shown])


def page_text(config):
    import status_page

    by_device = {device: page_id for page_id, device in status_page.page_ids(config).items()}
    lines = []
    for device in devices(config):
        if device not in by_device:
            lines.append(f"{device}: no status page is configured (status_pages in config.toml).")
        elif not config.get("status_page_url"):
            lines.append(f"{device}: a page id is set, but not where the page is served (status_page_url).")
        else:
            lines.append(f'{device}: {config["status_page_url"].rstrip("/")}/{by_device[device]}/')
    return "\n".join(lines) or "No device is configured (watch or device)."


def help_text():
    return "\n".join(["I answer about the power:"] + [f"/{name} - {what}" for name, what in COMMANDS.items()])


# --- pictures (matplotlib, when installed; the status page's colours) ---------------------------

def _png(figure):
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=100)
    plt.close(figure)
    return buffer.getvalue()


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def draw_today(view):
    """The day's timeline as a PNG: ON, OFF and no reading minute by minute on the local clock."""
    from status_page import MINUTE, OFF_COLOUR, ON_COLOUR, PLAN_COLOUR, POSSIBLE_COLOUR, UNKNOWN_COLOUR

    plt = _pyplot()
    timeline, local = view["timelines"][-1], view["zone"]
    start, end = timeline["start"], timeline["end"]
    colours = {"on": ON_COLOUR, "off": OFF_COLOUR, "none": UNKNOWN_COLOUR}
    figure, axis = plt.subplots(figsize=(8, 1.8), layout="constrained")
    for kind, first, until in timeline["segments"]:
        axis.broken_barh([((first - start) / MINUTE, (until - first) / MINUTE)], (0, 1), color=colours[kind])
    windows = timeline.get("windows")
    for first, until, possible in windows or ():
        # the schedule's band under the timeline, as on the page: a possible outage thinner
        first, until = max(first, start), min(until, end)
        axis.broken_barh([((first - start) / MINUTE, (until - first) / MINUTE)],
                         (-0.22, 0.1) if possible else (-0.3, 0.25), color=POSSIBLE_COLOUR if possible else PLAN_COLOUR)
    width = (end - start) // MINUTE
    ticks = [offset for offset in range(0, width + 1, 15)
             if (start + MINUTE * offset).astimezone(local).minute == 0
             and (start + MINUTE * offset).astimezone(local).hour % 3 == 0]
    axis.set_xticks(ticks, ["24:00" if t == width else f"{(start + MINUTE * t).astimezone(local):%H:%M}" for t in ticks])
    axis.set_xlim(0, width)
    axis.set_yticks([])
    axis.set_title(f'{view["device"]}, {timeline["date"]:%a %d %b} ({view["timezone"]}): '
                   "green ON, orange OFF, grey no reading"
                   + ("; dark band below: scheduled outage" if windows else ""), fontsize=10)
    return _png(figure)


def draw_week(view):
    """The days' hours ON, OFF and without a reading as stacked bars, as on the status page."""
    from status_page import OFF_COLOUR, ON_COLOUR, UNKNOWN_COLOUR

    plt = _pyplot()
    days = view["days"]
    labels = [d["date"].strftime("%a\n%d %b") for d in days]
    figure, axis = plt.subplots(figsize=(8, 3.2), layout="constrained")
    bottom = [0.0] * len(days)
    for key, colour, label in (("on", ON_COLOUR, "ON"), ("off", OFF_COLOUR, "OFF"), ("unknown", UNKNOWN_COLOUR, "no reading")):
        hours = [d[key] / 60 for d in days]
        axis.bar(labels, hours, bottom=bottom, color=colour, label=label)
        bottom = [b + h for b, h in zip(bottom, hours)]
    for index, day in enumerate(days):
        axis.text(index, bottom[index] + 0.3, f'{day["outages"]} outage{"" if day["outages"] == 1 else "s"}',
                  ha="center", fontsize=8)
    axis.set_ylabel("hours")
    axis.set_ylim(0, 27)
    axis.legend(ncol=3, fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.25), frameon=False)
    axis.set_title(f'{view["device"]}, the last {len(days)} days ({view["timezone"]})', fontsize=10)
    return _png(figure)


# --- answering -----------------------------------------------------------------------------------

def answers(command, config, client, now):
    """[(text, png or None)] for a command: one answer per device (a picture where it has one)."""
    if command == "help" or command == "start":
        return [(help_text(), None)]
    if command == "page":
        return [(page_text(config), None)]
    results = []
    for device in devices(config):
        view = _view(client, config, device, now, **SPANS[command])
        if command == "status":
            results.append((status_text(view), None))
        elif command == "outages":
            results.append((outages_text(view), None))
        else:
            text, draw = (today_text(view), draw_today) if command == "today" else (week_text(view), draw_week)
            picture = None
            try:
                picture = draw(view)
            except Exception as error:  # no matplotlib (Lambda), or a drawing bug: the text still goes
                log.warning("no picture for /%s (%s: %s): text only", command, type(error).__name__, one_line(error))
            results.append((text, picture))
    return results


def send(config, chat_id, text, picture=None):
    text = text if len(text) <= MAX_TEXT else text[:MAX_TEXT - 1] + "…"
    if picture is not None:
        if len(text) <= 1024:  # a photo's caption is at most 1,024 characters
            api(config, "sendPhoto", {"chat_id": chat_id, "caption": text}, {"photo": ("power.png", picture, "image/png")})
            return
        api(config, "sendPhoto", {"chat_id": chat_id}, {"photo": ("power.png", picture, "image/png")})
    api(config, "sendMessage", {"chat_id": chat_id, "text": text, "disable_web_page_preview": True})


class Bot:
    """Answers updates; remembers the strangers it has logged (each once)."""

    def __init__(self, config, client_factory, refused=None):
        self.config, self.client_factory, self._client = config, client_factory, None
        self.refused = set(refused or ())

    def client(self):
        self._client = self._client or self.client_factory()
        return self._client

    def handle(self, update, now=None):
        """Answer one update; returns what was done, in a word (for the tests and the log)."""
        update_id = update.get("update_id") if isinstance(update, dict) else None
        try:
            chat, command, arguments, reason = parse_command(update, self.config)
        except BotApiError as error:
            log.warning("update %s: can't tell who the command is for: %s", update_id, error)
            return "error"
        if chat is not None and not allowed(chat, self.config):
            return self._refuse(chat, update_id)
        if command is None:
            log.info("update %s ignored: %s", update_id, reason)
            return "ignored"
        if command not in COMMANDS and command != "start":
            if chat.get("type") != "private":
                log.info("update %s ignored: /%s is not one of mine", update_id, command)
                return "ignored"
            replies = [(f"I don't know /{command}.\n{help_text()}", None)]
        elif arguments:
            log.info("update %s: /%s with arguments, answered with the help", update_id, command)
            replies = [(f"/{command} takes no arguments.\n{help_text()}", None)]
        else:
            import dynamo

            try:
                replies = answers(command, self.config, self.client(), now or utc_now())
            except dynamo.CloudUnreachable as error:
                log.warning("update %s: /%s: DynamoDB unreachable: %s", update_id, command, one_line(error))
                replies = [("The readings can't be read right now (the cloud is unreachable); try again later.", None)]
        for text, picture in replies:
            send(self.config, chat["id"], text, picture)
        log.info("update %s: answered /%s in chat %s", update_id, command, chat["id"])
        return "answered"

    def _refuse(self, chat, update_id):
        key = str(chat["id"])
        if key not in self.refused:
            self.refused.add(key)
            log.warning("update %s from chat %s (%s) refused: not in telegram_chat_id (logged once a chat)",
                        update_id, key, str(chat.get("type"))[:20])
        return "refused"


# --- configuration -------------------------------------------------------------------------------

def load_bot_config(args=None, environ=None):
    """The bot's configuration, the secrets parameter's keys merged in (the environment wins)."""
    environ = dict(os.environ if environ is None else environ)
    config = load_config(args, KEYS, environ, host_device=False)
    if config["secrets_parameter"]:
        from watchdog import secret_environment

        config = load_config(args, KEYS, {**secret_environment(config["secrets_parameter"]), **environ},
                             host_device=False)
    if not config["telegram_token"]:
        raise ConfigError("telegram_token is not set: the bot's token from @BotFather (README, Telegram)")
    if not config["telegram_chat_id"]:
        raise ConfigError("telegram_chat_id is not set: the chats the bot answers (README, Telegram)")
    if not devices(config):
        config["device"] = load_config(args, ("device",), environ)["device"]
    return config


# --- the webhook (Lambda function URL, payload 2.0) ----------------------------------------------

def _answer(status, text=""):
    return {"statusCode": status, "headers": {"content-type": "text/plain; charset=utf-8", "cache-control": "no-store"},
            "body": text}


def respond(event, config, bot):
    """The function URL's answer to `event`: 404 off the path, 403 without the secret, 200 for
    every update accepted (answered or ignored: Telegram would send it again otherwise)."""
    import base64

    http = (event.get("requestContext") or {}).get("http") or {}
    if event.get("rawPath") != WEBHOOK_PATH or http.get("method") != "POST":
        return _answer(404, "not found\n")
    headers = {str(k).lower(): v for k, v in (event.get("headers") or {}).items()}
    given, expected = headers.get(SECRET_HEADER), config.get("telegram_webhook_secret")
    if not expected or not isinstance(given, str) or not hmac.compare_digest(given.encode(), expected.encode()):
        log.warning("webhook request refused: %s", "no telegram_webhook_secret configured" if not expected
                    else "wrong or missing secret token")
        return _answer(403, "forbidden\n")
    body = event.get("body") or ""
    if len(body) > MAX_BODY_BYTES * 4 // 3 + 4:
        log.warning("webhook update ignored: a body of %d bytes (at most %d)", len(body), MAX_BODY_BYTES)
        return _answer(200)
    try:
        raw = base64.b64decode(body, validate=True) if event.get("isBase64Encoded") else body.encode("utf-8", "surrogatepass")
        if len(raw) > MAX_BODY_BYTES:
            raise ValueError(f"a body of {len(raw)} bytes (at most {MAX_BODY_BYTES})")
        update = json.loads(raw)
        if not isinstance(update, dict):
            raise ValueError("not a JSON object")
    except (ValueError, UnicodeError) as error:
        log.warning("webhook update ignored: %s", one_line(str(error)[:200]))
        return _answer(200)
    try:
        bot.handle(update)
    except BotApiError as error:  # the answer could not be sent; Telegram resending the update won't help
        log.warning("update %s: the answer was not sent: %s", update.get("update_id"), error)
    return _answer(200)


_WARM = {}  # the Lambda container's bot (its strangers logged once per container)


def handler(event, context):
    """AWS Lambda entry point behind a function URL (payload 2.0): POST /telegram."""
    import dynamo

    logging.getLogger().setLevel(logging.INFO)
    logging.getLogger("botocore").setLevel(logging.WARNING)
    if "bot" not in _WARM:
        try:
            config = load_bot_config()
        except ConfigError as error:
            log.error("the bot's configuration: %s", one_line(error))
            return _answer(500, "misconfigured\n")
        _WARM["bot"] = Bot(config, dynamo.aws_client)
    bot = _WARM["bot"]
    return respond(event if isinstance(event, dict) else {}, bot.config, bot)


# --- long polling --------------------------------------------------------------------------------

class PollState:
    """The next update id to ask for, and the chats refused (each logged once), in one small
    JSON file written durably (temp file, fsync, rename, fsync the directory)."""

    def __init__(self, directory):
        self.directory = Path(directory)
        self.path = self.directory / "telegram-offset.json"

    def load(self):
        try:
            document = json.loads(self.path.read_text())
            return int(document["offset"]), set(map(str, document.get("refused", [])))
        except FileNotFoundError:
            return 0, set()
        except (OSError, ValueError, KeyError, TypeError) as error:
            raise JobFailed(f"the poll state {self.path} can't be read: {one_line(error)}") from None

    def save(self, offset, refused):
        from filebuffer import write_atomically

        try:
            write_atomically(self.directory, self.path.name,
                             json.dumps({"offset": offset, "refused": sorted(refused)}))
        except OSError as error:
            raise JobFailed(f"can't keep the poll offset in {self.directory}: {error.strerror}") from None

    @contextlib.contextmanager
    def lock(self):
        """One poller at a time (cron may start one while the last still runs): None if busy."""
        import fcntl

        try:
            self.directory.mkdir(parents=True, exist_ok=True)
            handle = open(self.directory / "poll.lock", "w")
        except OSError as error:
            raise JobFailed(f"can't use the state folder {self.directory}: {error.strerror}") from None
        with handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                yield False
                return
            yield True


def poll(config, state, once, wait=POLL_SECONDS):
    """Answer updates as getUpdates brings them. The offset past an update is kept before the
    update is answered: a crash loses that one answer (ask again), never answers twice."""
    import dynamo

    offset, refused = state.load()
    bot = Bot(config, dynamo.aws_client, refused)
    answered = 0
    while True:
        try:
            updates = api(config, "getUpdates", {"offset": offset, "timeout": 0 if once else wait,
                                                 "allowed_updates": ALLOWED_UPDATES},
                          timeout=HTTP_TIMEOUT_SECONDS + (0 if once else wait))
        except BotApiError as error:
            raise JobFailed(f"getUpdates failed: {error}") from None
        if not isinstance(updates, list):
            raise JobFailed("getUpdates answered something that is not a list of updates")
        fresh = 0
        for update in updates:
            update_id = update.get("update_id") if isinstance(update, dict) else None
            if not isinstance(update_id, int) or isinstance(update_id, bool) or update_id < offset:
                continue  # answered before (Telegram may hand it out again): never twice
            fresh += 1
            offset = update_id + 1
            before = set(bot.refused)
            state.save(offset, bot.refused)
            try:
                if bot.handle(update) == "answered":
                    answered += 1
            except BotApiError as error:
                log.warning("update %s: the answer was not sent: %s", update_id, error)
            if bot.refused != before:
                state.save(offset, bot.refused)
        if once and not fresh:
            return answered


# --- CLI -----------------------------------------------------------------------------------------

def build_parser():
    parser = ArgumentParser(prog="telegram_bot.py", description=__doc__.split("\n\n")[0])
    add_config_flags(parser, ("device", "table_prefix", "timezone", "log_dir", "telegram_api_url"))
    parser.add_argument("--poll", action="store_true", help="answer commands by long polling (getUpdates)")
    parser.add_argument("--once", action="store_true",
                        help="with --poll: answer what is waiting, then exit (for cron)")
    parser.add_argument("--state-dir", metavar="DIR", default=str(DEFAULT_STATE_DIR),
                        help=f"where --poll keeps its offset (default {DEFAULT_STATE_DIR.name}/)")
    parser.add_argument("command", nargs="?", choices=("set-webhook",),
                        help="set-webhook: register --url with Telegram, with the secret token")
    parser.add_argument("--url", metavar="URL", help="set-webhook: the function URL (…/telegram is added)")
    return parser


def set_webhook(config, url):
    if not config.get("telegram_webhook_secret"):
        raise ConfigError("telegram_webhook_secret is not set: the secret Telegram sends with each update")
    if not url.startswith("https://") and not url.startswith("http://127.0.0.1"):
        raise ConfigError("--url must be an https:// URL (Telegram calls only those)")
    url = url.rstrip("/")
    url = url if url.endswith(WEBHOOK_PATH) else url + WEBHOOK_PATH
    try:
        api(config, "setWebhook", {"url": url, "secret_token": config["telegram_webhook_secret"],
                                   "allowed_updates": ALLOWED_UPDATES, "drop_pending_updates": False})
        info = api(config, "getWebhookInfo")
    except BotApiError as error:
        raise JobFailed(str(error)) from None
    shown = {key: info.get(key) for key in ("url", "pending_update_count", "last_error_date", "last_error_message",
                                             "allowed_updates") if isinstance(info, dict) and key in info}
    print(redact(json.dumps(shown, indent=1, ensure_ascii=False), config))


def main(argv=None):
    args = build_parser().parse_args(argv)
    if args.command == "set-webhook":
        if not args.url or args.poll:
            raise ConfigError("set-webhook needs --url URL (and no --poll)")
    elif not args.poll:
        raise ConfigError("say what to do: --poll, or set-webhook --url URL")
    elif args.url:
        raise ConfigError("--url goes with set-webhook")
    if args.once and not args.poll:
        raise ConfigError("--once goes with --poll")
    config = load_bot_config(args)
    setup_logging(config["log_dir"], "telegram_bot")
    if args.command == "set-webhook":
        set_webhook(config, args.url)
        return EXIT_OK
    state = PollState(Path(args.state_dir).expanduser())
    with state.lock() as mine:
        if not mine:
            log.info("another poller is running: nothing to do")
            return EXIT_OK
        answered = poll(config, state, args.once)
    log.info("answered %d commands", answered)
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(run_cli(main))
