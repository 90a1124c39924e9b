"""`make demo`'s pipeline (not the venv creation): real scripts, aggregates, mirror, plots."""

import datetime as dt

import pytest

import demo
from tests.conftest import SCRIPT_TIMEOUT_SECONDS, aggregate_until_done

pytest.importorskip("nbclient")


@pytest.mark.slow
def test_the_demo_pipeline_ends_in_plots(moto_server, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "run", lambda env, script, *args: demo_run(env, script, *args))
    env, first, last = demo.pipeline(moto_server, tmp_path)
    assert (first, last) == (dt.date(2025, 10, 25), dt.date(2025, 10, 26))
    parquet = sorted(str(p.relative_to(tmp_path / "parquet")) for p in (tmp_path / "parquet").rglob("*.parquet"))
    # Kyiv's 25 October begins at 21:00 UTC on the 24th; minutes and hours stay UTC dates
    assert "minutes/device=demo_rpi/sensor=4/date=2025-10-24/data.parquet" in parquet
    assert "days/device=demo_rpi/sensor=bme280/month=2025-10/data.parquet" in parquet
    pngs = demo.plots(tmp_path, first, last)
    assert [p.name for p in pngs] == ["daily_uptime.png", "environment.png", "power_timeline.png"]
    assert all(p.stat().st_size > 10_000 for p in pngs)  # drawn figures, not empty canvases
    # the simulated outage of 06:00 UTC, told in Kyiv's time (+03:00 until the 26th)
    assert "Power OFF at 2025-10-25 09:00 (device demo_rpi, pin 4)" in OUTPUT[-1]
    import pyarrow.parquet as pq

    days = pq.read_table(tmp_path / "parquet" / "days/device=demo_rpi/sensor=4/month=2025-10/data.parquet").to_pylist()
    assert [(day["start"], day["expected"], day["count"], day["unknown"]) for day in days] == [
        (dt.datetime(2025, 10, 24, 21, tzinfo=dt.timezone.utc), 1440, 1440 - 150, 150),  # the Pi down 02:00-04:30
        (dt.datetime(2025, 10, 25, 21, tzinfo=dt.timezone.utc), 1500, 1500, 0),  # the clocks went back
    ]


OUTPUT = []


def demo_run(env, script, *args):
    import subprocess
    import sys

    if script == "aggregate.py":  # its next hourly run, where a loaded machine made moto too slow for it
        result = aggregate_until_done(env, *args)
    else:
        result = subprocess.run([sys.executable, str(demo.PROJECT_DIR / script), *args], env=env,
                                capture_output=True, text=True, timeout=SCRIPT_TIMEOUT_SECONDS)
    assert result.returncode == 0, (script, result.stderr)
    OUTPUT.append(result.stdout)
    return result
