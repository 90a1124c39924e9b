"""Shared helpers: configuration (config.toml < environment < flags), logging, the CLI edge.

Every command builds its parser with `add_config_flags(parser, keys)` and turns the parsed
arguments into a validated `dict` with `load_config(args, keys)`. Errors become one line on
stderr and exit code 2 in `run_cli`, never a traceback.
"""

import argparse
import datetime as dt
import logging
import os
import re
import socket
import sys
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
ENV_PREFIX = "BLACKOUT_"
CONFIG_ENV = "BLACKOUT_CONFIG"
LOG_KEEP_DAYS = 30

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class ConfigError(Exception):
    """A configuration value or flag is invalid."""


class JobFailed(Exception):
    """The job ran but could not do its work (exit 1)."""


# --- validators: each takes the raw value (str from env/flags, or a TOML value) -----------

DEVICE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# DynamoDB table names: 3-255 of [A-Za-z0-9_.-]; the longest suffix we add is "-minutes".
TABLE_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.-]{1,247}$")
BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
S3_PREFIX_RE = re.compile(r"^[A-Za-z0-9_.=/-]{1,512}$")


# A value that may be a credential pasted into the wrong key: a Telegram bot token anywhere in
# it, or a long run of letters and digits mixed (API keys, Pushbullet's o.TOKEN, ntfy topics).
# Each pattern starts only where a run starts (the lookbehinds), so a megabyte-long value is
# read once, not once per character.
TELEGRAM_TOKEN_RE = re.compile(r"(?<![0-9])[0-9]{5,}:[A-Za-z0-9_-]{20,}")
TOKEN_RUN_RE = re.compile(r"(?<![A-Za-z0-9_+=-])[A-Za-z0-9_+=-]{20,}")


def looks_like_token(text):
    if TELEGRAM_TOKEN_RE.search(text):
        return True
    return any(any(c.isdigit() for c in run) and any(c.isalpha() for c in run) for run in TOKEN_RUN_RE.findall(text))


def shown(value, limit=60):
    """repr() of a value for an error message, shortened: the message must stay one short line.
    A value that looks like a token is never echoed, only its length."""
    text = repr(value)
    if looks_like_token(text):
        return f"a value of {len(str(value))} characters that looks like a token (not shown)"
    return text if len(text) <= limit else f"{text[:limit - 5]}…{text[-4:]} ({len(str(value))} characters)"


def _text(key, value):
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string, got {shown(value)}")
    return value.strip()


def _device(key, value):
    value = _text(key, value)
    if not DEVICE_RE.fullmatch(value):
        raise ConfigError(
            f"{key} {shown(value)} is not a valid device name: use 1-64 letters, digits, '_' or '-'"
        )
    return value


def _table_prefix(key, value):
    value = _text(key, value)
    if not TABLE_PREFIX_RE.fullmatch(value):
        raise ConfigError(
            f"{key} {shown(value)} is not valid: DynamoDB table names allow 3-255 letters, digits, "
            "'_', '-' and '.', so use 1-247 of those"
        )
    return value


def _bucket(key, value):
    value = _text(key, value)
    if not BUCKET_RE.fullmatch(value) or ".." in value:
        raise ConfigError(
            f"{key} {shown(value)} is not a valid S3 bucket name: 3-63 lowercase letters, digits, '.' or '-'"
        )
    return value


def _s3_prefix(key, value):
    value = _text(key, value).strip("/")
    if not S3_PREFIX_RE.fullmatch(value):
        raise ConfigError(f"{key} {shown(value)} is not valid: use letters, digits, '_', '-', '.', '='")
    return value


def _path(key, value):
    value = _text(key, value)
    if not value:
        raise ConfigError(f"{key} must not be empty")
    if "\0" in value:
        raise ConfigError(f"{key} {shown(value)} is not a valid path")
    path = Path(value).expanduser()
    return path if path.is_absolute() else PROJECT_DIR / path


def _int_in(low, high, hexadecimal=False):
    limits = f"0x{low:02x} to 0x{high:02x}" if hexadecimal else f"{low} to {high}"

    def check(key, value):
        if isinstance(value, bool):
            raise ConfigError(f"{key} must be a whole number from {limits}, got {shown(value)}")
        typed = value
        if isinstance(value, str):
            text = typed = value.strip()
            try:
                if not text.isascii():
                    raise ValueError(text)
                # decimal (leading zeros allowed: 07), or 0x/0o/0b as Python writes them
                value = int(text, 10) if text.lstrip("+-").isdigit() else int(text, 0)
            except ValueError:
                raise ConfigError(
                    f"{key} must be a whole number from {limits}, got {shown(text)}"
                ) from None
        if not isinstance(value, int) or not low <= value <= high:
            # as typed (0x78, not 120), unquoted when it was a short number
            if isinstance(typed, str) and len(typed) <= 40:
                got = typed
            elif hexadecimal and isinstance(typed, int) and abs(typed) < 2**64:  # TOML's 0x78 is 120
                got = hex(typed)
            else:
                got = shown(typed)
            raise ConfigError(f"{key} must be a whole number from {limits}, got {got}")
        return value

    return check


TRUE_WORDS, FALSE_WORDS = ("true", "yes", "on", "1"), ("false", "no", "off", "0")


def _boolean(key, value):
    if isinstance(value, str) and value.strip().lower() in TRUE_WORDS + FALSE_WORDS:
        return value.strip().lower() in TRUE_WORDS
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false, got {shown(value)}")
    return value


# --- notification keys (notify.py): an error never echoes a secret ---------------------------

TELEGRAM_TOKEN_RE = re.compile(r"^[0-9]{1,20}:[A-Za-z0-9_-]{20,100}$")
TELEGRAM_CHAT_RE = re.compile(r"^(?:-?[0-9]{1,20}|@[A-Za-z][A-Za-z0-9_]{3,31})$")
SNS_TOPIC_ARN_RE = re.compile(
    r"^arn:aws[a-z-]*:sns:[a-z]{2}(?:-[a-z]+)+-[0-9]+:[0-9]{12}:[A-Za-z0-9_-]{1,251}(?:\.fifo)?$"
)


def _telegram_token(key, value):
    if not isinstance(value, str) or not TELEGRAM_TOKEN_RE.fullmatch(value.strip()):
        size = f"{len(value)} characters" if isinstance(value, str) else f"a {type(value).__name__}"
        raise ConfigError(f"{key} is not a Telegram bot token (digits, ':', then 20-100 letters, digits, "
                          f"'_' or '-', as @BotFather gives it); the value given is {size}")
    return value.strip()


def _one_chat_id(key, value):
    if isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    value = _text(key, value)
    if not TELEGRAM_CHAT_RE.fullmatch(value):
        raise ConfigError(f"{key} {shown(value)} is not a Telegram chat id: a number such as 123456789 "
                          "or -1001234567890, or @channelname")
    return value


def _telegram_chat_id(key, value):
    """One chat (a string, as before) or several: a TOML list, or ids separated by spaces (the
    environment's form), then a tuple. `telegram_chats` reads either."""
    if isinstance(value, str) and len(value.split()) > 1:
        value = value.split()
    if isinstance(value, list):
        if not value:
            raise ConfigError(f"{key} must name at least one chat")
        chats = tuple(dict.fromkeys(_one_chat_id(key, chat) for chat in value))
        return chats[0] if len(chats) == 1 else chats
    return _one_chat_id(key, value)


def telegram_chats(value):
    """The chats of a telegram_chat_id value as a tuple of strings (none when unset)."""
    if value is None:
        return ()
    return (value,) if isinstance(value, str) else tuple(value)


TELEGRAM_SECRET_RE = re.compile(r"^[A-Za-z0-9_-]{16,256}$")


def _telegram_webhook_secret(key, value):
    """The webhook's secret_token: Telegram allows 1-256 of A-Z a-z 0-9 _ -; we ask for 16 at
    least (guessable otherwise). Never shown, only its length."""
    if not isinstance(value, str) or not TELEGRAM_SECRET_RE.fullmatch(value.strip()):
        size = f"{len(value)} characters" if isinstance(value, str) else f"a {type(value).__name__}"
        raise ConfigError(f"{key} must be 16-256 letters, digits, '_' or '-' (python -c \"import secrets; "
                          f"print(secrets.token_urlsafe(32))\" makes one); the value given is {size}")
    return value.strip()


def _http_url(secret):
    def check(key, value):
        from urllib.parse import urlsplit

        if not isinstance(value, str):
            raise ConfigError(f"{key} must be a string, not a {type(value).__name__}")
        value = value.strip()
        try:
            parts = urlsplit(value)
            parts.port  # noqa: B018 (raises ValueError on a bad port)
        except ValueError:
            parts = None
        if (parts is None or parts.scheme not in ("http", "https") or not parts.hostname
                or any(ord(char) <= 32 for char in value)):
            if not secret:
                shown_value = shown(value)
            elif parts is not None and parts.scheme and parts.hostname and not parts.username:
                # only what was typed: the scheme and host as written, '…' for the rest, if any
                typed = value[:len(parts.scheme) + 3 + len(parts.hostname)]
                rest = "…" if len(value) > len(typed) else ""
                shown_value = f"'{typed}{rest}' ({len(value)} characters)"
                if looks_like_token(typed):
                    shown_value = f"a value of {len(value)} characters"
            else:
                shown_value = f"a value of {len(value)} characters"
            raise ConfigError(f"{key} must be an http:// or https:// URL with a host name, got {shown_value}")
        return value if secret else value.rstrip("/")

    return check


def _sns_topic_arn(key, value):
    value = _text(key, value)
    if not SNS_TOPIC_ARN_RE.fullmatch(value):
        raise ConfigError(f"{key} {shown(value)} is not an SNS topic ARN such as "
                          "arn:aws:sns:eu-central-1:123456789012:blackout (FIFO topics end in .fifo)")
    return value


APPRISE_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]{0,31}://\S+$")
APPRISE_SERVICES = "https://github.com/caronc/apprise/wiki"


def _apprise_urls(key, value):
    """A list (TOML, repeated flags) or one string of space-separated URLs (environment).

    Only the form SCHEME://... is checked here: whether Apprise knows the service needs Apprise,
    which the minute path imports only to send; the first send and --test-notify find that.
    """
    if isinstance(value, str):
        urls = value.split()
    elif isinstance(value, list):
        urls = value
    else:
        raise ConfigError(f"{key} must be a list of Apprise URLs, not a {type(value).__name__}")
    checked = []
    for number, url in enumerate(urls, 1):
        which = f"URL {number} of {len(urls)}"
        if not isinstance(url, str):
            raise ConfigError(f"{key}: {which} is a {type(url).__name__}, not an Apprise URL in quotes")
        url = url.strip()
        if not APPRISE_URL_RE.fullmatch(url) or not url.isprintable():
            scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]{0,31}:", url)
            start = f"'{scheme.group(0)}…', " if scheme else ""
            raise ConfigError(f"{key}: {which} ({start}{len(url)} characters) is not an Apprise URL such as "
                              f"ntfy://TOPIC (services and their URLs: {APPRISE_SERVICES})")
        if url not in checked:
            checked.append(url)
    return tuple(checked)


def zone(name=None):
    """The ZoneInfo of an IANA name (UTC when unset): the one place zones are made.

    zoneinfo reads the system's zone data, or the pinned `tzdata` package where a Pi has none.
    """
    from zoneinfo import ZoneInfo

    return ZoneInfo(name or "UTC")


def _timezone(key, value):
    from zoneinfo import ZoneInfoNotFoundError

    value = _text(key, value)
    try:
        zone(value)
    except (ZoneInfoNotFoundError, ValueError, OSError):
        raise ConfigError(f"{key} {shown(value)} is not a time zone name such as Europe/Kyiv or UTC") from None
    return value


def _devices(key, value):
    """A list of device names: a TOML array, repeated flags, or one string split at spaces/commas."""
    names = value.replace(",", " ").split() if isinstance(value, str) else value
    if not isinstance(names, list) or not names:
        raise ConfigError(f"{key} must name one or more devices, got {shown(value)}")
    return list(dict.fromkeys(_device(key, name) for name in names))


SECRETS_PARAMETER_RE = re.compile(
    r"^(?:/?[A-Za-z0-9_.\-/]{1,1011}|arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:[0-9]{12}:secret:[A-Za-z0-9/_+=.@-]{1,512})$"
)


def _secrets_parameter(key, value):
    value = _text(key, value)
    if not SECRETS_PARAMETER_RE.fullmatch(value):
        raise ConfigError(f"{key} {shown(value)} is neither an SSM parameter name (/blackout/watchdog) "
                          "nor a Secrets Manager secret ARN")
    return value


# The keys that configure notification channels (channels.py); here so that a minute with
# nothing to send knows them without importing channels.
CHANNEL_KEYS = ("telegram_token", "telegram_chat_id", "telegram_api_url", "webhook_url", "sns_topic_arn",
                "apprise_urls")


# Keys a secrets parameter may hold: the channels' and the Telegram bot's webhook secret.
SECRET_KEYS = CHANNEL_KEYS + ("telegram_webhook_secret",)


def check_channel_config(config):
    """ConfigError when Telegram is only half configured (channels.channels_from_config asks
    this too); cheap, so a minute says it even when it has nothing to send."""
    token, chat = config.get("telegram_token"), config.get("telegram_chat_id")
    if token and chat is None:
        raise ConfigError("telegram_token is set but telegram_chat_id is not: set both (README, Notifications)")
    if chat is not None and not token:
        raise ConfigError("telegram_chat_id is set but telegram_token is not: set both (README, Notifications)")


def channels_configured(config):
    """Whether any notification channel is configured (without building one)."""
    return any(config.get(key) for key in ("telegram_token", "webhook_url", "sns_topic_arn", "apprise_urls"))


PAGE_ID_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")


def _page_id(key, value):
    """A status page id (status_page.py new-id): 16-64 URL-safe characters, never shown in errors."""
    value = _text(key, value)
    if not PAGE_ID_RE.fullmatch(value):
        raise ConfigError(f"{key} is not a page id: 16-64 letters, digits, '_' or '-' "
                          f"(python status_page.py new-id makes one); the value given is {len(value)} characters")
    return value


def _status_pages(key, value):
    """{device: page id}: a TOML table, or NAME=ID pairs separated by spaces (environment)."""
    if isinstance(value, str):
        pairs = [pair.partition("=") for pair in value.replace(",", " ").split()]
        if any(not sep for _name, sep, _id in pairs):
            raise ConfigError(f"{key} must be NAME=ID pairs separated by spaces")
        value = {name: page_id for name, _sep, page_id in pairs}
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table of device = page id, such as {{alex_rpi = \"...\"}}")
    pages = {_device(key, name): _page_id(f"{key}.{name}", page_id) for name, page_id in value.items()}
    if len(set(pages.values())) != len(pages):
        raise ConfigError(f"{key}: two devices share one page id")
    return pages


# --- schedules (schedule.py) -------------------------------------------------------------------

# Yasno/DTEK community feeds mark "possible" outages (можливе/ймовірне відключення, the grey
# zone: сіра зона); eskom-calendar's summaries ("Stage 4", area names such as Greyton) are all
# definite.
SCHEDULE_POSSIBLE = r"(?i)possib|probab|\bmaybe\b|можлив|ймовірн|сір[аіу] зон|\bgr[ae]y\b"


def _schedule_sources(key, value):
    """A TOML list, or one string of space-separated sources (the environment)."""
    items = value.split() if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ConfigError(f"{key} must be a list of iCalendar URLs or file paths, not a {type(value).__name__}")
    sources = []
    for number, item in enumerate(items, 1):
        if not isinstance(item, str) or not item.strip() or "\0" in item:
            raise ConfigError(f"{key}: source {number} of {len(items)} is not a URL or file path in quotes")
        item = item.strip()
        if item[:9].lower() == "webcal://":  # how calendar sites link a feed: it is https
            item = "https" + item[6:]
        if "://" in item:
            try:
                _http_url(secret=True)(key, item)  # the one URL check (a feed's URL may hold a token)
            except ConfigError:
                raise ConfigError(f"{key}: source {number} of {len(items)} ({len(item)} characters) is not an "
                                  "http://, https:// or webcal:// URL") from None
        else:
            from pathlib import Path

            path = Path(item).expanduser()
            item = str(path if path.is_absolute() else PROJECT_DIR / path)
        if item not in sources:
            sources.append(item)
    return tuple(sources)


def _regex(key, value):
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a regular expression in quotes, got {shown(value)}")
    try:
        re.compile(value)
    except re.error as error:
        raise ConfigError(f"{key} {shown(value)} is not a regular expression: {error}") from None
    return value


# key -> (validator, default, flag, help). A default of None means "unset".
# The flags of REPEATABLE keys may be given several times (a list; the environment's is space-separated).
KEYS = {
    "device": (_device, None, "--device", "device alias (default: this host's name)"),
    "table_prefix": (_table_prefix, "blackout-monitor", "--table-prefix",
                     "tables are PREFIX-minutes, -hours, -days"),
    "buffer_dir": (_path, "buffer", "--buffer-dir", "directory of readings not yet stored"),
    "log_dir": (_path, "logs", "--log-dir", "directory of the daily log files"),
    "s3_bucket": (_bucket, None, "--bucket", "S3 bucket of the Parquet mirror"),
    "s3_prefix": (_s3_prefix, "blackout-monitor", "--prefix", "key prefix in the S3 bucket"),
    "parquet_dir": (_path, None, "--parquet-dir", "local folder of the Parquet mirror"),
    "retention_days": (_int_in(1, 36500), None, None, None),
    "pin": (_int_in(0, 27), None, "--pin", "BCM number of the relay's GPIO pin (0-27)"),
    "bus": (_int_in(0, 99), 1, "--bus", "I2C bus number of the BME280 (default 1)"),
    "address": (_int_in(0x03, 0x77, hexadecimal=True), 0x76, "--address", "I2C address of the BME280 (default 0x76)"),
    # whether the Pi has a BME280: read_pin.py --all-sensors (the installed cron minute) reads it
    "bme280": (_boolean, True, None, None),
    # hours DynamoDB may stay unreachable before the minute job says so (exit 1, once a day)
    "unreachable_alert_hours": (_int_in(1, 8760), 24, None, None),
    # notifications (notify.py, read_pin.py)
    "notify_after": (_int_in(1, 60), 1, "--notify-after",
                     "announce a power change once it held for this many readings (default 1)"),
    "telegram_token": (_telegram_token, None, "--telegram-token",
                       "Telegram bot token from @BotFather (better in config.toml: flags show in ps)"),
    "telegram_chat_id": (_telegram_chat_id, None, "--telegram-chat-id",
                         "Telegram chat to notify (several: separated by spaces; each is notified and may ask the bot)"),
    "telegram_api_url": (_http_url(secret=False), "https://api.telegram.org", "--telegram-api-url",
                         "Telegram Bot API base URL (default https://api.telegram.org)"),
    "webhook_url": (_http_url(secret=True), None, "--webhook-url",
                    "URL that gets a JSON POST of each notification (power changes; the watchdog's silent and back)"),
    "sns_topic_arn": (_sns_topic_arn, None, "--sns-topic-arn", "AWS SNS topic that gets each notification"),
    "apprise_urls": (_apprise_urls, None, "--apprise-url",
                     "one more notification channel, an Apprise URL such as ntfy://TOPIC; repeat "
                     "for more (replaces apprise_urls of config.toml; better there: flags show in ps)"),
    "timezone": (_timezone, None, "--timezone", "IANA time zone of your day: daily statistics, plots, messages (default UTC)"),
    # the watchdog (watchdog.py): its --device is repeatable and fills `watch`
    "watch": (_devices, None, "--device", "a device to watch (repeatable; default: the device key)"),
    "silent_after": (_int_in(1, 1440), 5, "--silent-after",
                     "minutes without a reading before a device is announced silent (default 5)"),
    # where the watchdog's secret keys (telegram_token, webhook_url, ...) are kept as a JSON object
    "secrets_parameter": (_secrets_parameter, None, None, None),
    # the status page (status_page.py): the page id of `device`, and {device: page id} with `watch`
    "status_page_id": (_page_id, None, None, None),
    "status_pages": (_status_pages, None, None, None),
    # published outage schedules (schedule.py): iCalendar URLs or files; space-separated in the environment
    "schedule_ics": (_schedule_sources, None, "--schedule-ics", "an iCalendar URL or file of planned outages "
                     "(repeatable; replaces schedule_ics of config.toml)"),
    "schedule_possible": (_regex, SCHEDULE_POSSIBLE, None, None),
    # where fetched schedules are kept (default: buffer_dir/schedule; /tmp in a Lambda)
    "schedule_cache": (_path, None, None, None),
    # the Telegram bot (telegram_bot.py): the webhook's secret token, and where the pages are served
    "telegram_webhook_secret": (_telegram_webhook_secret, None, None, None),
    "status_page_url": (_http_url(secret=False), None, None, None),
}


REPEATABLE = {"apprise_urls", "schedule_ics"}
METAVARS = {"silent_after": "MINUTES", "schedule_ics": "URL_OR_FILE"}  # as README writes them; otherwise the key in capitals


def add_config_flags(parser, keys):
    """Add the flags of `keys`; flag values are strings validated later, like the env's."""
    for key in keys:
        _validator, _default, flag, help_text = KEYS[key]
        if flag:
            parser.add_argument(flag, dest=key, metavar=METAVARS.get(key, key.upper()), default=None, help=help_text,
                                action="append" if key in REPEATABLE else "store")


def _read_toml(path):
    import tomllib  # only when a config file exists

    try:
        with open(path, "rb") as handle:
            return tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(f"config file {path} not found") from None
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        raise ConfigError(f"config file {path} can't be read: {error}") from None


def did_you_mean(word, choices, spelled=str):
    """'; did you mean `device`?' for a near miss of one of `choices`, else ''."""
    import difflib

    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.7)
    return f"; did you mean `{spelled(close[0])}`?" if close else ""


def config_file_path(environ):
    explicit = environ.get(CONFIG_ENV)
    if explicit is not None:
        if not explicit.strip():
            raise ConfigError(f"{CONFIG_ENV} is set but empty")
        return Path(explicit).expanduser(), True
    return PROJECT_DIR / "config.toml", False


def load_config(args=None, keys=KEYS, environ=None, host_device=True):
    """Merge defaults < config.toml < BLACKOUT_* environment < flags, validated. Returns a dict.

    Keys other commands use are accepted (one file serves them all); unknown keys are errors.
    An unset `device` is this host's name, unless `host_device` is false (it stays None).
    """
    environ = os.environ if environ is None else environ
    raw = {}
    path, explicit = config_file_path(environ)
    if explicit or path.exists():
        for key, value in _read_toml(path).items():
            if key not in KEYS:
                raise ConfigError(f"unknown key {key!r} in {path}{did_you_mean(key, KEYS)}")
            raw[key] = (value, f"{key} in {path}")
    for name, value in environ.items():
        if not name.startswith(ENV_PREFIX) or name == CONFIG_ENV:
            continue
        key = name[len(ENV_PREFIX):].lower()
        if key not in KEYS:
            close = did_you_mean(key, KEYS, spelled=lambda key: ENV_PREFIX + key.upper())
            raise ConfigError(f"unknown environment variable {name}{close}")
        raw[key] = (value, name)
    for key in keys:
        flag = KEYS[key][2]
        value = getattr(args, key, None) if args is not None else None
        if flag and value is not None:
            raw[key] = (value, flag)

    config = {}
    for key in keys:
        validator, default, _flag, _help = KEYS[key]
        if key in raw:
            value, source = raw[key]
            if isinstance(value, str) and not value.strip():
                raise ConfigError(f"{source} must not be empty")
            config[key] = validator(source, value)
        else:
            config[key] = validator(key, default) if isinstance(default, str) else default
    if "device" in keys and config["device"] is None and host_device:
        config["device"] = default_device()
    return config


def default_device():
    name = socket.gethostname().split(".")[0]
    if not DEVICE_RE.fullmatch(name):
        raise ConfigError(f"this host's name {name!r} is not a valid device name: pass --device")
    return name


# --- times ----------------------------------------------------------------------------

def parse_time(text, what="--at"):
    """ISO 8601 to an aware UTC datetime; a time without an offset is UTC."""
    try:
        value = dt.datetime.fromisoformat(text.strip())
        if value.tzinfo is None:
            return value.replace(tzinfo=dt.timezone.utc)
        return value.astimezone(dt.timezone.utc)
    except (ValueError, AttributeError, OverflowError):  # OverflowError: year 1 or 9999 shifted by its offset
        raise ConfigError(f"{what} {shown(text)} is not an ISO 8601 time (e.g. 2025-06-21T19:00)") from None


EARLIEST_TIME = dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc)  # no reading of this project is older
LATEST_AHEAD = dt.timedelta(days=1)


def check_time_bounds(value, what, now=None):
    """`value` (aware datetime or date) unless it lies before 2024 or more than a day after now:
    a typo (0025-01-01, 9999-12-31) must be one line and exit 2, not a traceback or years of work."""
    now = now or utc_now()
    if isinstance(value, dt.datetime):
        low, high = EARLIEST_TIME, now + LATEST_AHEAD
    else:
        low, high = EARLIEST_TIME.date(), (now + LATEST_AHEAD).date()
    if not low <= value <= high:
        raise ConfigError(f"{what} {value.isoformat()} is outside {low.isoformat()[:10]} to "
                          f"{high.isoformat()[:10]} (2024 to a day ahead)")
    return value


def bounded_time(text, what="--at", now=None):
    """parse_time, then check_time_bounds."""
    return check_time_bounds(parse_time(text, what), what, now)


def utc_now():
    return dt.datetime.now(dt.timezone.utc)


# --- logging --------------------------------------------------------------------------

class DailyFileHandler(logging.Handler):
    """Appends to LOG_DIR/blackout-monitor-YYYY-MM-DD.log (UTC date), one file a day.

    Several cron jobs log at once; O_APPEND writes of one line each are safe to share, where
    renaming a shared file at midnight (TimedRotatingFileHandler) is not.
    """

    def __init__(self, log_dir):
        super().__init__()
        self.log_dir = Path(log_dir)

    def emit(self, record):
        try:
            day = dt.datetime.fromtimestamp(record.created, dt.timezone.utc).date()
            line = self.format(record) + "\n"
            path = log_file(self.log_dir, day)
            fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            try:
                os.write(fd, line.encode("utf-8", "replace"))
            finally:
                os.close(fd)
        except Exception:  # logging must never take the job down
            self.handleError(record)


def log_file(log_dir, day):
    return Path(log_dir) / f"blackout-monitor-{day.isoformat()}.log"


def prune_logs(log_dir, keep_days=LOG_KEEP_DAYS, today=None):
    today = today or utc_now().date()
    oldest = today - dt.timedelta(days=keep_days - 1)
    for path in Path(log_dir).glob("blackout-monitor-*.log"):
        try:
            day = dt.date.fromisoformat(path.stem[-10:])
        except ValueError:
            continue
        if day < oldest:
            try:
                path.unlink()
            except OSError:
                pass


# extra= of a warning that belongs in the log file but not in cron's mail (an unreachable
# cloud: the reading waits in the buffer; mailing it every minute of an outage helps no one)
NOT_MAILED = {"quiet": True}


def setup_logging(log_dir, name):
    """Daily log files at INFO, warnings and errors on stderr too (cron mails those)."""
    logger = logging.getLogger()
    logger.setLevel(logging.INFO)
    for handler in list(logger.handlers):
        logger.removeHandler(handler)
    formatter = logging.Formatter(
        f"%(asctime)s {name}[%(process)d] %(levelname)s %(message)s", "%Y-%m-%dT%H:%M:%SZ"
    )
    formatter.converter = lambda *args: dt.datetime.now(dt.timezone.utc).timetuple()
    stderr = logging.StreamHandler(sys.stderr)
    stderr.setLevel(logging.WARNING)
    stderr.addFilter(lambda record: not getattr(record, "quiet", False))
    stderr.setFormatter(logging.Formatter(f"{name}: %(levelname)s %(message)s"))
    logger.addHandler(stderr)
    try:
        Path(log_dir).mkdir(parents=True, exist_ok=True)
        if not os.access(log_dir, os.W_OK):
            raise PermissionError(f"{log_dir} is not writable")
        file_handler = DailyFileHandler(log_dir)
        file_handler.setFormatter(formatter)
        logger.addHandler(file_handler)
        if not log_file(log_dir, utc_now().date()).exists():
            prune_logs(log_dir)  # the day's first run: the other runs of the day would find nothing
    except OSError as error:
        logger.warning("can't write logs to %s (%s): logging to stderr only", log_dir, error)
    # botocore logs retries at DEBUG/INFO; its INFO lines are noise in a daily file
    logging.getLogger("botocore").setLevel(logging.WARNING)
    return logging.getLogger(name)


# --- CLI edge -------------------------------------------------------------------------

class ArgumentParser(argparse.ArgumentParser):
    """argparse, with errors as one 'Error:' line (exit 2): cron mails stay short."""

    _checking = False

    def add_argument(self, *args, **kwargs):
        # argparse checks each new flag with a help formatter, and a formatter measures the
        # terminal (importing shutil, bz2, lzma): a fifth of a cron minute that reads nothing
        # from its terminal. Checking needs no width; --help still measures it.
        self._checking = True
        try:
            return super().add_argument(*args, **kwargs)
        finally:
            self._checking = False

    def _get_formatter(self):
        if self._checking:
            return self.formatter_class(prog=self.prog, width=80)
        return super()._get_formatter()

    def error(self, message):
        self.exit(EXIT_USAGE, f"Error: {one_line(message)} (see {self.prog} --help)\n")


def not_a_command(prog, doc, instead, argv=None):
    """main() of a module run as a script: `--help` says what it is and which command to run."""
    parser = ArgumentParser(prog=prog, description=doc.split("\n\n")[0],
                            epilog=f"This module is not a command of its own: {instead}.")
    parser.parse_args(argv)
    raise ConfigError(f"{prog} is not a command of its own: {instead}")


MESSAGE_LIMIT = 300


def one_line(error):
    """An error message on one line of bounded length, whatever value it quotes."""
    text = " ".join(str(error).split())
    return text if len(text) <= MESSAGE_LIMIT else text[:MESSAGE_LIMIT - 1] + "…"


def run_cli(main, argv=None):
    """Call main(argv) and turn the project's errors into exit codes with one stderr line."""
    try:
        return main(argv)
    except ConfigError as error:
        print(f"Error: {one_line(error)}", file=sys.stderr)
        return EXIT_USAGE
    except JobFailed as error:
        # one form at the command line whenever it fails: the daily log keeps it too, but its
        # stderr handler must not print it a second time as "name: ERROR ..."
        if logging.getLogger().handlers:  # none: logging's last resort would print it too
            logging.getLogger().error("%s", one_line(error), extra=NOT_MAILED)
        print(f"Error: {one_line(error)}", file=sys.stderr)
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("Error: interrupted", file=sys.stderr)
        return EXIT_FAILED
    except BrokenPipeError:  # `... | head`: the reader left; say nothing more
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
