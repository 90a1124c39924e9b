"""What the notebook's figures show, as plain functions: tested without drawing anything.

Only visualise.ipynb imports this module (pandas); the minute path never does.
"""

import datetime as dt

import pandas as pd

# readings a minute apart belong to one line; a longer silence is a gap, not a measurement
LINE_GAP = dt.timedelta(minutes=2)
# a day's minutes by what is known about the power: (column of the days table, legend label)
DAY_PARTS = (("on", "power ON"), ("off", "power OFF"), ("unknown", "no reading"))


def broken_at_gaps(times, values, gap=LINE_GAP):
    """`values` indexed by `times`, with a missing value wherever two readings are further apart
    than `gap`: matplotlib breaks a line at a missing value, so hours without a reading show
    as a hole instead of a straight line that looks measured."""
    series = pd.Series(list(values), index=pd.DatetimeIndex(times), dtype="float64").sort_index()
    if len(series) < 2:
        return series
    starts = series.index[1:][series.index.to_series().diff().iloc[1:] > gap]
    holes = pd.Series(float("nan"), index=starts - pd.Timedelta(seconds=1), dtype="float64")
    return pd.concat([series, holes]).sort_index()


def day_hours(days):
    """{column: hours per day} of DAY_PARTS: stacked, a day's bar is as long as its minutes so far
    (24 h, or 23/25 h on the days the clocks change)."""
    return {column: days[column].fillna(0) / 60 for column, _label in DAY_PARTS}


def day_label(outages, uptime):
    """The text over a day's bar: its outages, and the power's share of its recorded minutes."""
    if pd.isna(uptime):
        return "no reading"
    outages = int(outages)
    return f"{outages} outage{'' if outages == 1 else 's'}\n{uptime:.0%} up"


ON_COLOUR, OFF_COLOUR, UNKNOWN_COLOUR = "#009E73", "#D55E00", "lightgrey"  # Okabe-Ito: any colour vision
TICK_EVERY_HOURS = 3


def clock_ticks(low, high, zone, every_hours=TICK_EVERY_HOURS):
    """[(minutes since `low`, label)] for the axis of the local day [low, high) (UTC): ticks on
    the local clock, every `every_hours` hours and at a change of the clocks. On a day the clocks
    change each label carries the zone's abbreviation, and the tick of the change says which
    hour is repeated (clocks back: 03:00 EEST, then 03:00 EET again) or missing (clocks forward)."""
    hours = int((high - low) // dt.timedelta(hours=1))
    offsets = {(low + dt.timedelta(hours=k)).astimezone(zone).utcoffset() for k in range(hours + 1)}
    changing = len(offsets) > 1
    ticks = []
    for k in range(hours + 1):
        instant = low + dt.timedelta(hours=k)
        local = instant.astimezone(zone)
        before = (instant - dt.timedelta(hours=1)).astimezone(zone)
        shift = local.utcoffset() - before.utcoffset()
        label = f"{local:%H:%M}" + (f" {local:%Z}" if changing else "")
        if k == hours:
            label = "24:00"  # the next midnight ends the row
        elif k and shift:
            first, last = (local, local - shift) if shift < dt.timedelta(0) else (local - shift, local)
            what = "again" if shift < dt.timedelta(0) else "skipped"
            label += f"\n({first:%H:%M}–{last:%H:%M} {what})"
        elif local.minute or local.hour % every_hours:
            continue
        ticks.append((k * 60, label))
    # a tick an hour before a change would print over it (03:00 EEST under 03:00 EET): the
    # change's label says which hour it is
    changes = [minute for minute, label in ticks if "\n" in label]
    return [(minute, label) for minute, label in ticks
            if "\n" in label or not any(0 < change - minute < 120 for change in changes)]


def power_timeline(minutes, dates, zone, now, title):
    """The power minute by minute, one row a local day in `zone` (23, 24 or 25 hours long), each
    row on its own local clock: a figure. `minutes` has `ts` (UTC) and `reading` columns."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    import aggregation

    windows = [aggregation.day_window(day, zone) for day in dates]
    longest = max(((high - low) // dt.timedelta(minutes=1) for low, high in windows), default=24 * 60)
    figure, axes = plt.subplots(max(1, len(dates)), 1, figsize=(12, 0.95 * max(1, len(dates)) + 1.2),
                                squeeze=False, layout="constrained")
    now = pd.Timestamp(now)
    for axis, day, (low, high) in zip(axes[:, 0], dates, windows):
        length = (high - low) // dt.timedelta(minutes=1)  # 1440, or 1380 / 1500 when the clocks change
        # unknown only where the minute has passed: the future is not missing data
        elapsed = min(length, max(0, (now - pd.Timestamp(low)) // pd.Timedelta(minutes=1)))
        axis.broken_barh([(0, elapsed)], (-0.4, 0.8), color=UNKNOWN_COLOUR)
        of_day = minutes[(minutes["ts"] >= low) & (minutes["ts"] < high)]
        minute_of_day = (of_day["ts"].dt.floor("min") - pd.Timestamp(low)) // pd.Timedelta(minutes=1)
        for value, colour in ((1, ON_COLOUR), (0, OFF_COLOUR)):
            axis.broken_barh([(m, 1) for m in minute_of_day[of_day["reading"] == value]], (-0.4, 0.8), color=colour)
        hours = (high - low) // dt.timedelta(hours=1)
        axis.set_yticks([0], [f"{day}" + ("" if hours == 24 else f"\n({hours} h)")])
        axis.set_ylim(-0.5, 0.5)
        ticks = clock_ticks(low, high, zone)
        axis.set_xticks([minute for minute, _label in ticks], [label for _minute, label in ticks], fontsize=8)
        axis.set_xlim(0, longest)
    axes[0, 0].set_title(title)
    axes[-1, 0].set_xlabel(f"local time ({zone.key}); each day on its own clock")
    figure.legend(handles=[Patch(color=ON_COLOUR, label="power ON"), Patch(color=OFF_COLOUR, label="power OFF"),
                           Patch(color=UNKNOWN_COLOUR, label="no reading")],
                  loc="outside lower center", ncol=3, frameon=False)
    return figure


class NoData(Exception):
    """The notebook found no readings for its parameters: it stops rather than draw empty plots."""
