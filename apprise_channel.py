"""Notification channels through Apprise URLs (ntfy, Pushover, e-mail, Discord, Matrix, …).

Each URL of `apprise_urls` is one channel of its own, with the queue's backoff, late marking
and `--test-notify` line. Apprise (a second of imports on a Pi) is imported only when a
message is actually sent: building a channel, and a minute with nothing to say, never
import it. A channel's name shows its scheme and a short fingerprint (a hash of the URL) only,

    apprise ntfy #1a2b3c4d        apprise pover #9f8e7d6c        apprise mailtos #0a1b2c3d

because any other part of an Apprise URL may be a secret (an ntfy topic is its password; in
pbul://o.TOKEN the "host" is the token); every text from Apprise is redacted of them too, and
Apprise's own log lines are kept out of the log (their gist is in the channel's error detail).
"""

import hashlib
import logging
import re
from urllib.parse import unquote

from channels import TRANSIENT_STATUSES, Outcome, _one_line, redact
from messages import subject_text
from utils import APPRISE_SERVICES as SERVICES_URL, ConfigError

# a host name with a dot, an IPv4 or [IPv6] address, localhost: shown; anything else may be a token
HOST_RE = re.compile(r"^(?:localhost|[0-9]{1,3}(?:\.[0-9]{1,3}){3}|\[[0-9A-Fa-f:.]+\]"
                     r"|[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+)$")
STATUS_RE = re.compile(r"\berror=(\d{3})(?:\d{2})?\b")  # ntfy's codes are the HTTP status + 2 digits
SHORTEST_SECRET = 4     # shorter path segments or query values would only mangle error texts


def url_parts(url):
    """(scheme, shown host or None, secrets) of an Apprise URL, by text alone (no Apprise).

    The host is shown only when it looks like one (a dotted name, an address, localhost):
    in `pover://USER@TOKEN` or `discord://ID/TOKEN` the "host" is a credential.
    """
    scheme, _, rest = url.partition("://")
    cut = re.search(r"[/?#]", rest)
    netloc, tail = (rest[:cut.start()], rest[cut.start():]) if cut else (rest, "")
    userinfo, _, hostport = netloc.rpartition("@")
    host = hostport
    port = ""
    if not hostport.startswith("["):
        host, _, port = hostport.partition(":")
    elif "]:" in hostport:
        host, port = hostport.rsplit(":", 1)
    shown_host = host if HOST_RE.fullmatch(host) and (not port or port.isdigit()) else None
    secrets = {url, rest, tail, userinfo, *userinfo.split(":")}
    if shown_host is None:
        secrets.update({netloc, hostport, host, port})
    with_query = tail.split("#", 1)[0]
    path, _, query = with_query.partition("?")
    secrets.update(segment for segment in path.split("/"))
    for pair in query.split("&"):
        secrets.update(pair.split("=", 1))
    secrets |= {unquote(secret) for secret in secrets}
    return scheme.lower(), (f"{shown_host}:{port}" if shown_host and port else shown_host), \
        tuple(secret for secret in secrets if len(secret) >= SHORTEST_SECRET)


def shown_url(url):
    """'ntfy://ntfy.sh/…', 'pover://…', 'mailtos://…@gmail.com/…': what may be shown of `url`."""
    scheme, host, _secrets = url_parts(url)
    rest = url.partition("://")[2]
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if host is None:
        return f"{scheme}://…"
    user = "…@" if "@" in netloc else ""
    more = "/…" if len(rest) > len(netloc) else ""
    return f"{scheme}://{user}{host}{more}"


SCHEME_RE = re.compile(r"^[a-z][a-z0-9+.-]{0,31}$")
FINGERPRINT_CHARS = 8


def fingerprint(url):
    """A short hash of the URL: tells two channels apart, and this one over time, revealing nothing."""
    return hashlib.sha256(url.encode()).hexdigest()[:FINGERPRINT_CHARS]


def channel_name(url):
    """'apprise ntfy #1a2b3c4d': kind, scheme and fingerprint only, by construction. No other
    part of an Apprise URL is known not to be secret (pbul://o.TOKEN looks like a host name)."""
    scheme = url.partition("://")[0].lower() if "://" in url else ""
    return f"apprise {scheme if SCHEME_RE.fullmatch(scheme) else '?'} #{fingerprint(url)}"


def channels(urls):
    """One `AppriseChannel` per URL, named by channel_name (unique: the fingerprints differ)."""
    return [AppriseChannel(url, channel_name(url)) for url in urls]


class AppriseMissing(ConfigError):
    """apprise_urls is set but the apprise package is not installed."""


def _apprise():
    """The apprise module, its log lines kept out of ours (they may quote a URL's parts)."""
    try:
        import apprise
    except ImportError:
        raise AppriseMissing("apprise_urls is set but Apprise is not installed: "
                             "pip install -r requirements.txt") from None

    apprise_log = logging.getLogger(apprise.LOGGER_NAME)
    apprise_log.propagate = False
    if not apprise_log.handlers:
        apprise_log.addHandler(logging.NullHandler())
    return apprise


class AppriseChannel:
    """One Apprise URL. `send` answers an Outcome like the project's other channels."""

    def __init__(self, url, name):
        self.url, self.name = url, name
        self.identity = (url,)  # channels.channel_id's input
        self.secrets = url_parts(url)[2]
        self._plugin = None      # Apprise's object, False when Apprise can't use the URL
        self._timeouts = None    # its own (connect, read) timeouts

    def plugin(self):
        """Apprise's object for the URL, or None when Apprise can't use it (unknown service, parts missing)."""
        if self._plugin is None:
            apprise = _apprise()
            asset = apprise.AppriseAsset(app_id="blackout-monitor", app_desc="blackout-monitor",
                                         storage_mode=apprise.PersistentStoreMode.MEMORY)
            self._plugin = apprise.Apprise.instantiate(self.url, asset=asset) or False
            if self._plugin:
                self._timeouts = (self._plugin.socket_connect_timeout, self._plugin.socket_read_timeout)
        return self._plugin or None

    def problem(self):
        """Why Apprise can't use this URL (one line, no secret), or None."""
        if self.plugin() is not None:
            return None
        scheme = url_parts(self.url)[0]
        from apprise.manager_plugins import NotificationManager

        if scheme not in NotificationManager():  # the plugins' registry, shared by all its instances
            return f"Apprise knows no service '{scheme}://' (see {SERVICES_URL})"
        return f"Apprise can't read it as a {scheme}:// URL: a part is missing or wrong (see {SERVICES_URL})"

    def send(self, message, text, timeout):
        try:
            problem = self.problem()
        except AppriseMissing as error:  # waits, backing off, until it is installed
            return Outcome(False, str(error))
        if problem:
            return Outcome(False, problem, rejected=True)
        apprise = _apprise()
        plugin = self.plugin()
        # the URL's own (Apprise: 4 s each, 15 s to connect by e-mail), never more than the queue allows
        plugin.socket_connect_timeout, plugin.socket_read_timeout = (min(limit, timeout) for limit in self._timeouts)
        kind = {"off": apprise.NotifyType.WARNING, "on": apprise.NotifyType.SUCCESS}.get(
            message.get("state"), apprise.NotifyType.INFO)
        sender = apprise.Apprise(asset=plugin.asset)
        sender.add(plugin)
        try:
            result = sender.notify(body=text, title=subject_text(message), notify_type=kind,
                                   body_format=apprise.NotifyFormat.TEXT)
        except Exception as error:  # a plugin's bug must not stop the queue
            return Outcome(False, _one_line(redact(f"{type(error).__name__}: {error}", self.secrets), 200))
        if result:
            return Outcome(True, "sent")
        said = [entry.message for entry in result.logs() if entry.level in ("WARNING", "ERROR")]
        detail = _one_line(redact("; ".join(said) or f"Apprise: {result.status.name.lower()}", self.secrets), 200)
        statuses = [int(found) for found in STATUS_RE.findall(" ".join(said))]
        rejected = bool(statuses) and all(400 <= status < 500 and status not in TRANSIENT_STATUSES
                                          for status in statuses)
        return Outcome(False, detail + (f" (check this Apprise URL, {SERVICES_URL})" if rejected else ""),
                       rejected=rejected)


def check_channels(configured):
    """ConfigError for the first Apprise URL Apprise can't use (imports Apprise if there is one)."""
    ours = [channel for channel in configured if isinstance(channel, AppriseChannel)]
    for number, channel in enumerate(ours, 1):
        problem = channel.problem()
        if problem:
            raise ConfigError(f"apprise_urls: URL {number} of {len(ours)} ({channel.name[len('apprise '):]}): "
                              f"{problem}")
