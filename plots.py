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
