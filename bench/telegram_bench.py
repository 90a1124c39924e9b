"""DynamoDB requests per Telegram bot command (BENCHMARKS.md, "The Telegram bot").

    python bench/telegram_bench.py        # prints the Markdown table

A week of minutes of one pin (one outage a day) and a BME280, days items before today, in
moto's in-process mock; each command answered at local 12:00 and at 23:59 (the most hours of
today to read), its requests counted with a botocore hook as they are sent.
"""

import datetime as dt
import os
import sys
from pathlib import Path
from unittest import mock

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import dynamo  # noqa: E402
import status_page  # noqa: E402
import telegram_bot  # noqa: E402
import utils  # noqa: E402
from filebuffer import Reading  # noqa: E402

DEVICE, PREFIX, ZONE = "bench_rpi", "bench-bot", "Europe/Kyiv"
CREDENTIALS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}
TODAY = dt.date(2025, 6, 10)


def seed(client):
    zone = utils.zone(ZONE)
    tables, items = dynamo.table_names(PREFIX), []
    start, end = status_page.day_window(TODAY - dt.timedelta(days=7), zone)[0], status_page.day_window(TODAY, zone)[1]
    minute = start
    while minute < end:
        local = minute.astimezone(zone)
        value = 0 if local.hour == 9 else 1  # an hour's outage every morning
        ts = minute + dt.timedelta(seconds=3)
        items.append((tables["minutes"], dynamo.minute_item(Reading(DEVICE, "4", ts, {"reading": value}))))
        items.append((tables["minutes"], dynamo.minute_item(Reading(DEVICE, "bme280", ts, {
            "temperature_c": 21.0, "humidity_pct": 50.0, "pressure_hpa": 1000.0}))))
        minute += dt.timedelta(minutes=1)
    for sensor in ("4", "bme280"):
        pk, sk = dynamo.registry_key(DEVICE, sensor)
        items.append((tables["minutes"], {"pk": {"S": pk}, "sk": {"S": sk}, "device": {"S": DEVICE}, "sensor": {"S": sensor}}))
    for back in range(1, 8):
        day = TODAY - dt.timedelta(days=back)
        first, _ = status_page.day_window(day, zone)
        stats = {"count": 1440, "expected": 1440, "unknown": 0, "on": 1380, "off": 60, "uptime": 1380 / 1440,
                 "outages": 1, "longest_outage_minutes": 60, **dynamo.day_attributes(first, zone)}
        items.append((tables["days"], dynamo.day_item(DEVICE, "4", day, stats, end)))
    dynamo.put_all(client, items)


def main():
    from moto import mock_aws

    with mock.patch.dict(os.environ, CREDENTIALS), mock_aws():
        client = dynamo.aws_client()
        dynamo.create_tables({"table_prefix": PREFIX, "retention_days": None}, client)
        seed(client)
        calls = []
        client.meta.events.register("provide-client-params.dynamodb", lambda params, model, **_: calls.append(model.name))
        config = {"device": DEVICE, "watch": None, "table_prefix": PREFIX, "timezone": ZONE, "silent_after": 5,
                  "status_pages": None, "status_page_id": None, "status_page_url": None}
        zone = utils.zone(ZONE)
        times = {"12:00": dt.datetime.combine(TODAY, dt.time(12, 0), zone), "23:59": dt.datetime.combine(TODAY, dt.time(23, 59), zone)}
        print("| command | requests at 12:00 | requests at 23:59 | what it reads |")
        print("| --- | ---: | ---: | --- |")
        reads = {"status": "registry, today's pin minutes (an hour a Query), the last hour of the BME280, the watchdog's state",
                 "today": "registry, today's pin minutes, the watchdog's state",
                 "week": "registry, today's pin minutes, the days items of the month(s) of the 7 days, the watchdog's state",
                 "outages": "registry, 7 days of pin minutes, the watchdog's state",
                 "page": "nothing", "help": "nothing"}
        for command in telegram_bot.COMMANDS:
            counts = []
            for now in times.values():
                calls.clear()
                with mock.patch.object(telegram_bot, "draw_today", lambda view: b""), \
                        mock.patch.object(telegram_bot, "draw_week", lambda view: b""):
                    telegram_bot.answers(command, config, client, now.astimezone(dt.timezone.utc))
                counts.append(len(calls))
            print(f"| /{command} | {counts[0]} | {counts[1]} | {reads[command]} |")


if __name__ == "__main__":
    main()
