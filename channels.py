"""Notification channels: Telegram, webhook, SNS; what each answered; secrets kept out of logs.

Shared by the Pi's notifications (notify.py) and the watchdog (watchdog.py). A channel's
`send(message, text, timeout)` never raises: it returns an `Outcome`. Only the standard
library is imported here; boto3 only inside the SNS sender. Secrets (the bot token, the
webhook URL) are never logged: every error text is passed through `redact`.
"""

import contextlib
import dataclasses
import json

from messages import subject_text, webhook_document
from utils import CHANNEL_KEYS, check_channel_config, telegram_chats

KEYS = CHANNEL_KEYS  # the channels' configuration keys live in utils (a quiet minute needs no channels.py)
HTTP_TIMEOUT_SECONDS = 5.0     # one request (connect + answer)
USER_AGENT = "blackout-monitor"


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
        self.identity = (token, chat_id, self.api_url)  # channel_id's input
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
        self.identity = (url,)  # channel_id's input
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


def _sns_client(region):
    """An SNS client of the topic's region, with standard retries and short timeouts: a dead
    link must not hold up the minute job (the region comes from the ARN, so no region lookup)."""
    import boto3
    from botocore.config import Config

    config = Config(retries={"mode": "standard", "total_max_attempts": 3}, connect_timeout=3, read_timeout=5)
    return boto3.client("sns", region_name=region, config=config)


class Sns:
    """AWS SNS Publish; on a FIFO topic with the message id as MessageDeduplicationId."""

    name = "sns"
    THROTTLED = {"Throttling", "ThrottlingException", "ThrottledException", "KMSThrottling",
                 "InternalError", "InternalFailure", "ServiceUnavailable"}

    def __init__(self, topic_arn):
        self.topic_arn = topic_arn
        self.identity = (topic_arn,)  # channel_id's input
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

        subject = subject_text(message)
        if message.get("kind") == "watchdog":
            attributes, group = ("device", "event"), f"{message['device']}-watchdog"
        else:
            attributes, group = ("device", "sensor", "state"), f"{message['device']}-{message['sensor']}"
        kwargs = {
            "TopicArn": self.topic_arn,
            "Message": text,
            "Subject": subject.encode("ascii", "replace").decode()[:100],
            "MessageAttributes": {
                name: {"DataType": "String", "StringValue": str(message[name])} for name in attributes
            },
        }
        if self.fifo:
            kwargs["MessageGroupId"] = group
            kwargs["MessageDeduplicationId"] = message["id"]
        try:
            self._client = self._client or _sns_client(self.region)
            answer = self._client.publish(**kwargs)
        except (NoCredentialsError, PartialCredentialsError):
            return Outcome(False, "no AWS credentials found", rejected=True)
        except ClientError as error:
            code = error.response.get("Error", {}).get("Code", "")
            status = error.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            text = _one_line(f"{code}: {error.response.get('Error', {}).get('Message', '')}", 200)
            transient = code in self.THROTTLED or status >= 500 or status == 429
            return Outcome(False, text, rejected=not transient)
        except (BotoCoreError, ValueError) as error:  # ValueError: botocore's invalid endpoint
            return Outcome(False, _one_line(error, 200))
        return Outcome(True, f"sent (MessageId {answer.get('MessageId', '?')})")


def channel_id(channel):
    """A short, stable id of a channel, the same on the Pi and in the watchdog when both are
    configured with the same channel: a digest of what the channel is (its kind and its whole
    configuration: token and chat, URL, topic ARN), never its display name, which may change.
    The watchdog records deliveries under it and the Pi matches its own channels against them."""
    import hashlib

    identity = getattr(channel, "identity", None)
    if identity is None:
        identity = (getattr(channel, "url", None) or getattr(channel, "name", ""),)
    text = json.dumps([type(channel).__name__, *map(str, identity)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def channels_from_config(config):
    """The configured channels; ConfigError when Telegram is only half configured."""
    channels = []
    check_channel_config(config)
    token, chat = config.get("telegram_token"), config.get("telegram_chat_id")
    if token:  # each listed chat is a channel of its own: each hears every message
        channels += [Telegram(token, one, config.get("telegram_api_url") or "https://api.telegram.org")
                     for one in telegram_chats(chat)]
    if config.get("webhook_url"):
        channels.append(Webhook(config["webhook_url"]))
    if config.get("sns_topic_arn"):
        channels.append(Sns(config["sns_topic_arn"]))
    if config.get("apprise_urls"):
        import apprise_channel  # the module only: Apprise itself is imported by a send

        channels += apprise_channel.channels(config["apprise_urls"])
    return channels
