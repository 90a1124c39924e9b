"""Apprise URLs as notification channels, against real receivers on 127.0.0.1.

Apprise's own `json://` and `form://` schemes post to tests/fakehttp's small HTTP server; `ntfy://`
talks to one playing ntfy's publish protocol (a JSON POST to / naming the topic, a Bearer
token, ntfy's answers and error documents). Time is the fake clock of test_notify: each
`cron_run` is one minute job, as cron would start it.
"""

import datetime as dt
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

import apprise_channel
import notify
import read_pin
from tests.conftest import PROJECT_DIR
from tests.fakehttp import FakeServer
from tests.test_notify import (  # noqa: F401 (cli_env, clock: fixtures)
    UTC, cli_env, clock, cron_run, free_port, queue_files)
from utils import KEYS, load_config, run_cli

HOOK_SECRET = "hook-s3cret-path"
FORM_SECRET = "form-s3cret-path"
NTFY_TOKEN = "tk_ntfys3cretT0ken0123456789abc"
NTFY_TOPIC = "power-topic-s3cret"
SECRETS = (HOOK_SECRET, FORM_SECRET, NTFY_TOKEN, NTFY_TOPIC)
OFF = "Power OFF at 22:30 UTC (device alex_rpi, pin 4)"
BACK = "Power back at 01:30 UTC after 3 h 0 min (device alex_rpi, pin 4)"


def address(server):
    return server.url.removeprefix("http://")


def messages(server):
    """The texts a receiver accepted (Apprise's json://, form:// and ntfy all call it `message`)."""
    return [request.body["message"] for request in server.delivered()]


def ntfy_answer(path):
    """ntfy's answer to a publish (a JSON POST to / naming the topic); the token is checked on the
    recorded requests, refusals are scripted as NTFY_401."""
    if path != "/":
        return 404, {"code": 40401, "http": 404, "error": "page not found"}, {}
    return 200, {"id": "hwQ2YpKdmg", "time": 1750545000, "event": "message", "topic": NTFY_TOPIC}, {}


NTFY_401 = (401, {"code": 40101, "http": 401, "error": "unauthorized", "link": "https://ntfy.sh/docs/publish/"}, {})
NTFY_503 = (503, {"code": 50301, "http": 503, "error": "server temporarily unavailable"}, {})


def serving(answer):
    server = FakeServer(answer)
    yield server
    server.close()


@pytest.fixture
def hook(webhook):
    """The json:// receiver: conftest's webhook server."""
    return webhook


@pytest.fixture
def form():
    yield from serving(lambda path: (200, {"ok": True}, {}))


@pytest.fixture
def ntfy():
    yield from serving(ntfy_answer)


def name_of(url):
    """A channel's name: kind, scheme and fingerprint (apprise_channel.channel_name)."""
    return f"apprise {url.split('://')[0]} #{apprise_channel.fingerprint(url)}"


def urls(hook, form, ntfy):
    return (f"json://{address(hook)}/hooks/{HOOK_SECRET}", f"form://{address(form)}/forms/{FORM_SECRET}",
            f"ntfy://{NTFY_TOKEN}@{address(ntfy)}/{NTFY_TOPIC}")


@pytest.fixture
def cfg(config, hook, form, ntfy):
    """The conftest config with three Apprise channels and no other."""
    return {**config, "pin": 4, "notify_after": 1, "telegram_token": None, "telegram_chat_id": None,
            "telegram_api_url": None, "webhook_url": None, "sns_topic_arn": None, "timezone": None,
            "apprise_urls": urls(hook, form, ntfy)}


def off_then_on(cfg, clock):
    cron_run(cfg, clock, 1)
    clock.now = dt.datetime(2025, 6, 21, 22, 30, tzinfo=UTC)
    cron_run(cfg, clock, 0)
    clock.now = dt.datetime(2025, 6, 22, 1, 30, tzinfo=UTC)
    cron_run(cfg, clock, 1)


def everything_logged(caplog, cfg):
    """Our log records, status and queue files. Apprise's own records never reach a handler of
    ours (its logger doesn't propagate; pytest attaches caplog to such loggers, so skip them)."""
    ours = "\n".join(record.getMessage() for record in caplog.records if record.name != "apprise")
    status = "\n".join(notify.status_lines(cfg["buffer_dir"]))
    return ours + status + "".join(path.read_text() for path in queue_files(cfg))


# --- delivery through the queue ---------------------------------------------------------------

def test_each_url_gets_each_message_once(cfg, clock, hook, form, ntfy):
    off_then_on(cfg, clock)
    for _ in range(5):  # nothing more to say
        clock.advance()
        cron_run(cfg, clock, 1)
    for receiver in (hook, form, ntfy):
        assert messages(receiver) == [OFF, BACK] and len(receiver.requests) == 2
    assert [request.body["title"] for request in hook.requests] == ["blackout-monitor: power OFF (alex_rpi, 4)",
                                                                    "blackout-monitor: power ON (alex_rpi, 4)"]
    assert [request.body["type"] for request in form.requests] == ["warning", "success"]
    assert [request.path for request in hook.requests] == [f"/hooks/{HOOK_SECRET}"] * 2
    assert {request.body["topic"] for request in ntfy.requests} == {NTFY_TOPIC}
    assert {request.headers["Authorization"] for request in ntfy.requests} == {f"Bearer {NTFY_TOKEN}"}
    assert queue_files(cfg) == []


def test_receiver_down_then_up_gets_its_messages_late_and_once(cfg, clock, hook, form, ntfy, caplog):
    cron_run(cfg, clock, 1)
    ntfy.down = True
    clock.now = dt.datetime(2025, 6, 21, 22, 30, tzinfo=UTC)
    for minute in range(60):  # OFF 22:30-22:59, ON from 23:00; ntfy is unreachable all along
        cron_run(cfg, clock, 0 if minute < 30 else 1)
        clock.advance()
    assert ntfy.requests == [] and 5 <= ntfy.dropped < 20  # backed off, not every minute
    on_time = [OFF, "Power back at 23:00 UTC after 30 min (device alex_rpi, pin 4)"]
    assert messages(hook) == on_time and messages(form) == on_time
    status = "\n".join(notify.status_lines(cfg["buffer_dir"], now=clock()))
    assert f"notification channel {name_of(urls(hook, form, ntfy)[2])}: failing since 22:30 UTC" in status
    ntfy.down = False
    for _ in range(15):
        cron_run(cfg, clock, 1)
        clock.advance()
    late = r" — sent 23:[34]\d UTC, the link was down"
    off, on = messages(ntfy)
    assert re.fullmatch(re.escape(on_time[0]) + late, off) and re.fullmatch(re.escape(on_time[1]) + late, on)
    assert len(ntfy.requests) == 2 and len(hook.requests) == 2 and len(form.requests) == 2
    assert queue_files(cfg) == [] and (cfg["buffer_dir"] / "notify" / "channels.json").read_text() == "{}"
    assert not any(secret in everything_logged(caplog, cfg) for secret in SECRETS)


def test_one_failing_channel_leaves_the_others_on_time(cfg, clock, hook, form, ntfy, caplog):
    cron_run(cfg, clock, 1)
    ntfy.script += [NTFY_503] * 3
    clock.now = dt.datetime(2025, 6, 21, 22, 30, tzinfo=UTC)
    cron_run(cfg, clock, 0)
    assert messages(hook) == [OFF] and messages(form) == [OFF]
    assert [request.status for request in ntfy.requests] == [503]
    assert f"notification via {name_of(urls(hook, form, ntfy)[2])}" in caplog.text and "error=50301" in caplog.text
    for _ in range(20):
        clock.advance()
        cron_run(cfg, clock, 0)
    (late,) = messages(ntfy)
    assert late.startswith(OFF + " — sent 22:") and late.endswith(", the link was down")
    assert [request.status for request in ntfy.requests] == [503, 503, 503, 200]
    assert len(hook.requests) == 1 and len(form.requests) == 1 and queue_files(cfg) == []
    assert not any(secret in everything_logged(caplog, cfg) for secret in SECRETS)


def test_a_refused_token_is_retried_then_given_up_without_showing_it(cfg, clock, hook, form, ntfy, caplog):
    cfg["apprise_urls"] = (f"ntfy://tk_wrongwrongwrongwrong@{address(ntfy)}/{NTFY_TOPIC}",)
    ntfy.script += [NTFY_401] * 10
    cron_run(cfg, clock, 1)
    clock.advance()
    cron_run(cfg, clock, 0)
    for _ in range(80):  # 6 refusals, ten minutes apart
        clock.advance()
        cron_run(cfg, clock, 0)
    assert [request.status for request in ntfy.requests] == [401] * notify.MAX_REJECTIONS
    assert {request.headers["Authorization"] for request in ntfy.requests} == {"Bearer tk_wrongwrongwrongwrong"}
    assert "rejected the notification" in caplog.text and "error=40101" in caplog.text
    assert queue_files(cfg) == [] and len(queue_files(cfg, "bad")) == 1
    assert "wrongwrong" not in everything_logged(caplog, cfg) + "".join(
        path.read_text() for path in queue_files(cfg, "bad"))


def test_without_apprise_installed_messages_wait_and_test_notify_says_why(cfg, clock, hook, cli_env, capsys,
                                                                         monkeypatch, caplog):
    monkeypatch.setitem(sys.modules, "apprise", None)  # `import apprise` raises ImportError
    cron_run(cfg, clock, 1)
    clock.advance()
    cron_run(cfg, clock, 0)
    assert hook.requests == [] and len(queue_files(cfg)) == 1
    assert "(apprise_urls is set but Apprise is not installed: pip install -r requirements.txt)" in caplog.text
    cli_env.setenv("BLACKOUT_APPRISE_URLS", cfg["apprise_urls"][0])
    capsys.readouterr()  # what the minute job's logging said (an earlier test's handlers may linger)
    assert run_cli(read_pin.main, ["--test-notify"]) == 2
    assert capsys.readouterr().err == ("Error: apprise_urls is set but Apprise is not installed: "
                                       "pip install -r requirements.txt\n")


def test_two_urls_of_one_host_are_two_channels(config):
    first, second = apprise_channel.channels(("ntfy://ntfy.sh/first-topic", "ntfy://ntfy.sh/second-topic"))
    assert first.name != second.name and first.name.startswith("apprise ntfy #")
    assert "topic" not in first.name + second.name


@pytest.mark.parametrize("url, scheme", [
    ("ntfy://ntfy.sh/my-topic", "ntfy"),
    ("ntfys://tk_token@ntfy.example.org/alerts?priority=high", "ntfys"),
    ("pover://user-key-0123456789@app-token-0123456789", "pover"),
    ("mailtos://me:app-password@gmail.com?to=you@example.org", "mailtos"),
    ("tgram://123456789:AAHf-secret_0123456789/4242", "tgram"),
    ("discord://1234567890/webhook-token", "discord"),
    ("json://localhost:8080", "json"),
    ("pbul://o.gn5kj6nfhv736I7jC3cj3QLRiyhgl98b", "pbul"),  # a Pushbullet token looks like a host name
])
def test_a_channel_shows_kind_scheme_and_fingerprint_only(url, scheme):
    (channel,) = apprise_channel.channels((url,))
    assert re.fullmatch(rf"apprise {scheme} #[0-9a-f]{{8}}", channel.name)
    assert channel.name == apprise_channel.channel_name(url)  # stable: the same URL, the same name


# --- configuration, --test-notify ---------------------------------------------------------------

def test_apprise_urls_from_the_file_the_environment_and_repeated_flags(tmp_path):
    (tmp_path / "config.toml").write_text('apprise_urls = ["ntfy://ntfy.sh/a", "json://localhost/b"]\n')
    environ = {"BLACKOUT_CONFIG": str(tmp_path / "config.toml")}
    parser = read_pin.build_parser()
    keys = ("apprise_urls",)
    assert load_config(parser.parse_args([]), keys, environ)["apprise_urls"] == ("ntfy://ntfy.sh/a",
                                                                                 "json://localhost/b")
    environ["BLACKOUT_APPRISE_URLS"] = " form://localhost/c  ntfy://ntfy.sh/a "
    assert load_config(parser.parse_args([]), keys, environ)["apprise_urls"] == ("form://localhost/c",
                                                                                 "ntfy://ntfy.sh/a")
    args = parser.parse_args(["--apprise-url", "ntfy://ntfy.sh/x", "--apprise-url", "ntfy://ntfy.sh/x",
                              "--apprise-url", "pover://u@t"])
    assert load_config(args, keys, environ)["apprise_urls"] == ("ntfy://ntfy.sh/x", "pover://u@t")
    assert KEYS["apprise_urls"][1] is None


@pytest.mark.parametrize("config_file, env, flags, named", [
    ("", {"BLACKOUT_APPRISE_URLS": "ntfy://ntfy.sh/fine ntfy:/s3cret-topic"}, [],
     "BLACKOUT_APPRISE_URLS: URL 2 of 2 ('ntfy:…', 18 characters)"),
    ("", {}, ["--apprise-url", "json://localhost/ok", "--apprise-url", "s3cret-topic"],
     "--apprise-url: URL 2 of 2 (12 characters)"),
    ('apprise_urls = ["ntfy://ntfy.sh/s3cret-topic", 42]\n', {}, [],
     "apprise_urls in config.toml: URL 2 of 2 is a int"),
    ('apprise_urls = ["ntfy://ntfy.sh/s3cret-topic\\u0007"]\n', {}, [],
     "apprise_urls in config.toml: URL 1 of 1 ('ntfy:…', 28 characters)"),
    ('apprise_urls = {url = "ntfy://ntfy.sh/s3cret-topic"}\n', {}, [],
     "apprise_urls in config.toml must be a list of Apprise URLs, not a dict"),
    ("", {"BLACKOUT_APPRISE_URLS": "json://localhost/ok bogus://s3cret-topic@example.org/x"}, ["--test-notify"],
     "apprise_urls: URL 2 of 2 (bogus #" + apprise_channel.fingerprint("bogus://s3cret-topic@example.org/x")
     + "): Apprise knows no service 'bogus://'"),
    ("", {}, ["--test-notify", "--apprise-url", "pover://s3cret-topic@"],
     "apprise_urls: URL 1 of 1 (pover #" + apprise_channel.fingerprint("pover://s3cret-topic@")
     + "): Apprise can't read it as a pover:// URL"),
])
def test_a_malformed_url_is_one_line_naming_it_exit_2(cli_env, capsys, tmp_path, config_file, env, flags,
                                                       named):
    (tmp_path / "config.toml").write_text(config_file)
    for name, value in env.items():
        cli_env.setenv(name, value)
    code = run_cli(read_pin.main, ["--pin", "4", "--simulate", "--value", "1", *flags])
    captured = capsys.readouterr()
    assert code == 2 and captured.out == ""
    named = named.replace("in config.toml", f"in {tmp_path / 'config.toml'}")  # the file by its full path
    assert captured.err.count("\n") == 1 and captured.err.startswith("Error: " + named), captured.err
    assert "s3cret" not in captured.err and "Traceback" not in captured.err


def test_a_malformed_url_in_config_toml_stops_a_real_process(server_env, tmp_path):
    from tests.conftest import run_script

    (tmp_path / "config.toml").write_text('apprise_urls = ["ntfy://power-topic-s3cret", "pover:/s3cret-key@tok"]\n')
    result = run_script("read_pin.py", "--pin", "4", "--simulate", "--value", "1", env=server_env)
    assert result.returncode == 2 and result.stdout == ""
    assert result.stderr.startswith(f"Error: apprise_urls in {tmp_path / 'config.toml'}: URL 2 of 2 ('pover:…', 21 characters) "
                                    "is not an Apprise URL") and result.stderr.count("\n") == 1
    assert "s3cret" not in result.stderr
    assert not list((tmp_path / "buffer").glob("*.json"))


def test_test_notify_prints_one_line_per_url(cli_env, capsys, tmp_path, hook, form, ntfy):
    dead = f"json://127.0.0.1:{free_port()}/dead/{HOOK_SECRET}"
    cli_env.setenv("BLACKOUT_APPRISE_URLS", " ".join(urls(hook, form, ntfy) + (dead,)))
    cli_env.setenv("BLACKOUT_PIN", "4")
    code = run_cli(read_pin.main, ["--test-notify"])
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert code == 1
    assert lines[:3] == [f"{name_of(url)}: ok: sent" for url in urls(hook, form, ntfy)]
    assert lines[3].startswith(f"{name_of(dead)}: FAILED: ")
    assert len(lines) == 4
    for receiver in (hook, form, ntfy):
        (text,) = messages(receiver)
        assert text.startswith("Test message from blackout-monitor (device alex_rpi, pin 4)")
    assert hook.requests[0].body["title"] == "blackout-monitor: power test (alex_rpi, 4)"
    logged = captured.out + captured.err + "".join(path.read_text() for path in (tmp_path / "logs").glob("*.log"))
    assert f"test notification via {name_of(urls(hook, form, ntfy)[1])}" in logged
    assert not any(secret in logged for secret in SECRETS)
    assert not (tmp_path / "buffer" / "notify" / "queue").exists()


# --- the minute path: Apprise only when there is something to send ---------------------------------

PROBE = ("import sys, read_pin, utils; code = utils.run_cli(read_pin.main, sys.argv[1:]); "
         "print(code, 'apprise' in sys.modules)")


def test_apprise_is_imported_only_on_a_minute_with_a_message(server_env, hook):
    env = dict(server_env, BLACKOUT_DEVICE="probe_rpi", BLACKOUT_PIN="4",
               BLACKOUT_APPRISE_URLS=f"json://{address(hook)}/hooks/{HOOK_SECRET}")

    said = []  # stderr, as cron would mail it

    def minute(value):
        result = subprocess.run([sys.executable, "-c", PROBE, "--simulate", "--value", value, "--no-flush"],
                                env=env, cwd=PROJECT_DIR, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr
        said.append(result.stderr)
        return result.stdout.split()

    assert minute("1") == ["0", "False"]  # the first reading: the state, nothing to say
    assert minute("1") == ["0", "False"]  # unchanged
    assert hook.requests == []
    assert minute("0") == ["0", "True"]  # a power cut: sent, so Apprise was imported
    assert [text.split(" at ")[0] for text in messages(hook)] == ["Power OFF"]
    assert minute("0") == ["0", "False"]  # said; nothing waits
    hook.down = True
    assert minute("1") == ["0", "True"]
    logged = "".join(said) + "".join(path.read_text() for path in Path(env["BLACKOUT_LOG_DIR"]).glob("*.log"))
    assert f"notification via {name_of(env['BLACKOUT_APPRISE_URLS'])} not sent" in logged
    assert HOOK_SECRET not in logged


# --- the watchdog's messages -------------------------------------------------------------------------

def test_the_watchdog_sends_through_apprise_urls_kept_in_ssm(dynamodb, config, hook, ntfy, monkeypatch):
    import boto3

    import watchdog
    from tests.test_watchdog import DEVICE, T0, LambdaContext, at, pin

    boto3.client("ssm", region_name="us-east-1").put_parameter(
        Name="/blackout/watchdog", Type="SecureString",
        Value=json.dumps({"apprise_urls": [f"json://{address(hook)}/hooks/{HOOK_SECRET}",
                                           f"ntfy://{NTFY_TOKEN}@{address(ntfy)}/{NTFY_TOPIC}"]}))
    for name, value in {"BLACKOUT_WATCH": DEVICE, "BLACKOUT_TABLE_PREFIX": config["table_prefix"],
                        "BLACKOUT_SECRETS_PARAMETER": "/blackout/watchdog"}.items():
        monkeypatch.setenv(name, value)
    pin(dynamodb, config, T0, at("22:31"), 1)
    event = {"at": "2025-06-21T22:35:10Z"}
    assert watchdog.handler(event, LambdaContext())["announced"] == [DEVICE]
    assert watchdog.handler(event, LambdaContext())["announced"] == []
    for server in (hook, ntfy):
        (text,) = messages(server)
        assert text.startswith("No word from alex_rpi since 22:30 UTC")
    assert hook.requests[0].body["title"] == "blackout-monitor: alex_rpi silent"
    assert ntfy.requests[0].headers["Authorization"] == f"Bearer {NTFY_TOKEN}"
