"""What the notebook's figures show: gaps stay gaps, a day's bar holds its unknown minutes."""

import datetime as dt
import math

import pandas as pd
import pytest

import plots

UTC = dt.timezone.utc


def minutes(start, count):
    return [start + dt.timedelta(minutes=i) for i in range(count)]


def test_a_line_breaks_where_readings_stop():
    before = minutes(dt.datetime(2025, 6, 21, 0, 0, tzinfo=UTC), 5)  # 00:00-00:04
    after = minutes(dt.datetime(2025, 6, 21, 2, 0, tzinfo=UTC), 3)  # the Pi back at 02:00
    line = plots.broken_at_gaps(before + after, range(8))
    values = list(line.values)
    assert values[:5] == [0, 1, 2, 3, 4] and math.isnan(values[5]) and values[6:] == [5, 6, 7]
    assert line.index[4] < line.index[5] < line.index[6] == pd.Timestamp(after[0])


@pytest.mark.parametrize("count", [0, 1, 90])
def test_readings_a_minute_apart_stay_one_line(count):
    times = minutes(dt.datetime(2025, 6, 21, tzinfo=UTC), count)
    line = plots.broken_at_gaps(times, [20.5] * count)
    assert len(line) == count and not line.isna().any()


def test_a_days_bar_holds_on_off_and_unknown_minutes():
    days = pd.DataFrame({"on": [1000, 1170, 600], "off": [290, 330, 100], "unknown": [150, 0, 0],
                         "expected": [1440, 1500, 700]})  # the second day has 25 hours
    hours = plots.day_hours(days)
    assert list(hours) == ["on", "off", "unknown"]
    totals = hours["on"] + hours["off"] + hours["unknown"]
    assert list(totals) == [24, 25, 700 / 60] and hours["unknown"][0] == 2.5


@pytest.mark.parametrize("outages, uptime, label", [
    (3, 0.8125, "3 outages\n81% up"),
    (1, 1.0, "1 outage\n100% up"),
    (0, 1.0, "0 outages\n100% up"),
    (0, float("nan"), "no reading"),
])
def test_the_label_over_a_days_bar(outages, uptime, label):
    assert plots.day_label(outages, uptime) == label
