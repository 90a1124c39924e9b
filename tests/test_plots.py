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


@pytest.mark.parametrize("day, hours, labels", [
    # the clocks go back at 04:00 EEST: 03:00-04:00 comes twice, the row is 25 hours long
    (dt.date(2025, 10, 26), 25, ["00:00 EEST", "03:00 EET\n(03:00–04:00 again)", "06:00 EET",
                                 "09:00 EET", "12:00 EET", "15:00 EET", "18:00 EET", "21:00 EET", "24:00"]),
    # they go forward at 03:00 EET: 03:00-04:00 never comes, the row is 23 hours long
    (dt.date(2025, 3, 30), 23, ["00:00 EET", "04:00 EEST\n(03:00–04:00 skipped)", "06:00 EEST", "09:00 EEST",
                                "12:00 EEST", "15:00 EEST", "18:00 EEST", "21:00 EEST", "24:00"]),
])
def test_a_dst_days_timeline_is_labelled_with_the_local_clock(day, hours, labels):
    """Drawn (Agg) and read back: each row's ticks are its own day's clock, so an outage told as
    `Power OFF at 2025-10-26 08:00 EET` is drawn between 06:00 EET and 09:00 EET, at 08:00."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from utils import zone as make_zone

    kyiv = make_zone("Europe/Kyiv")
    ordinary = day - dt.timedelta(days=1)
    start = dt.datetime.combine(ordinary, dt.time(), tzinfo=kyiv).astimezone(UTC)
    times = minutes(start, 24 * 60 + hours * 60)
    off = dt.datetime.combine(day, dt.time(8), tzinfo=kyiv).astimezone(UTC)  # 08:00 local, 2 hours OFF
    values = [0 if off <= ts < off + dt.timedelta(hours=2) else 1 for ts in times]
    frame = pd.DataFrame({"ts": pd.to_datetime(times, utc=True), "reading": values})
    figure = plots.power_timeline(frame, [ordinary, day], kyiv, pd.Timestamp(times[-1]) + pd.Timedelta(days=1), "t")
    try:
        figure.canvas.draw()
        first, second = figure.axes[:2]
        assert [t.get_text() for t in second.get_xticklabels()] == labels
        assert [t.get_text() for t in first.get_xticklabels()] == [
            f"{h:02d}:00" for h in range(0, 24, 3)] + ["24:00"]  # an ordinary day: plain hours
        assert second.get_yticklabels()[0].get_text() == f"{day}\n({hours} h)"
        ticks = dict(zip((t.get_text().split()[0] for t in second.get_xticklabels()), second.get_xticks()))
        off_bars = [bar for bar in second.collections if tuple(bar.get_facecolor()[0][:3]) == matplotlib.colors.to_rgb(
            plots.OFF_COLOUR)]
        (xs,) = {tuple(sorted(path.vertices[:, 0].min() for path in bar.get_paths())) for bar in off_bars}
        assert ticks["06:00"] < xs[0] < ticks["09:00"]
        assert xs[0] == ticks["06:00"] + 120  # 08:00 local on that day's clock
    finally:
        plt.close(figure)
