"""`make demo`'s pipeline (not the venv creation): real scripts, aggregates, mirror, plots."""

import datetime as dt
import json
import os
import shlex
import signal
import subprocess
import sys
from pathlib import Path

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
    assert "Power OFF at 2025-10-25 09:00 EEST (device demo_rpi, pin 4)" in OUTPUT[-1]
    import pyarrow.parquet as pq

    days = pq.read_table(tmp_path / "parquet" / "days/device=demo_rpi/sensor=4/month=2025-10/data.parquet").to_pylist()
    assert [(day["start"], day["expected"], day["count"], day["unknown"]) for day in days] == [
        (dt.datetime(2025, 10, 24, 21, tzinfo=dt.timezone.utc), 1440, 1440 - 150, 150),  # the Pi down 02:00-04:30
        (dt.datetime(2025, 10, 25, 21, tzinfo=dt.timezone.utc), 1500, 1500, 0),  # the clocks went back
    ]
    # the --wait hints alone point the README's commands, run in the project folder, at the demo's data
    hints = demo.try_it_lines(moto_server, tmp_path, dt.datetime.combine(last, dt.time(12), tzinfo=dt.timezone.utc))
    (exported,) = [line.strip()[len("export "):] for line in hints if line.strip().startswith("export ")]
    env = {name: value for name, value in os.environ.items() if not name.startswith(("AWS_", "BLACKOUT_"))}
    env.update(dict(assignment.split("=", 1) for assignment in shlex.split(exported)))
    commands = [line.strip() for line in hints if line.strip().startswith(".venv/bin/")]
    assert len(commands) == 5  # notify.py list, status, three queries

    def run_hint(command):
        words = shlex.split(command)  # .venv/bin/python is this interpreter; .venv/bin/aws its neighbour
        program = sys.executable if words[0] == ".venv/bin/python" else str(Path(sys.executable).parent / "aws")
        result = subprocess.run([program, *words[1:]], env=env, cwd=demo.PROJECT_DIR,
                                capture_output=True, text=True, timeout=120)
        assert (result.returncode, result.stderr) == (0, ""), (command, result.stderr)
        return result.stdout

    listed, status, *queries = map(run_hint, commands)
    assert "Power OFF at 2025-10-25 09:00 EEST (device demo_rpi, pin 4)" in listed  # notify.py list
    # status finds the demo's data, a year old or more, and tells it in Kyiv's time
    for sensor in ("4", "bme280"):
        assert (f"device demo_rpi sensor {sensor}: newest reading 2025-10-26 23:59 EET; 0 hours awaiting "
                f"aggregation; newest aggregated hour 2025-10-26 23:00 EET") in status, status
    assert "device demo_rpi pin 4: power ON since 2025-10-26 17:45 EET (last reading 2025-10-26 23:59 EET)" in status
    assert all(json.loads(answer)["Count"] > 0 for answer in queries)  # a minute partition, a day of hours, a month
    # a live watchdog run on the demo's old data: silent since its last reading, not "never sent one"
    watched = subprocess.run([sys.executable, "watchdog.py"], env=env, cwd=demo.PROJECT_DIR, capture_output=True,
                             text=True, timeout=120)
    assert watched.returncode == 0, watched.stderr
    assert "watchdog: demo_rpi: SILENT since 2025-10-26 23:59 EET (announced)" in run_hint(commands[1])


def test_the_plots_are_listed_as_the_readme_shows_them(monkeypatch):
    monkeypatch.chdir(demo.PROJECT_DIR)
    pngs = [demo.PROJECT_DIR / "demo-output" / "plots" / name for name in sorted(demo.PLOT_DESCRIPTIONS)]
    readme = (demo.PROJECT_DIR / "README.md").read_text()
    block = readme[readme.index("```\nPlots:\n") + 4:]
    assert block[:block.index("```")].splitlines() == ["Plots:", *demo.plot_lines(pngs)]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_wait_ends_on_a_signal_even_with_stdin_at_dev_null(signum):
    """`demo.py --wait < /dev/null &`: no input() to hit EOF, a clean exit on Ctrl-C or kill."""
    waiting = subprocess.Popen([sys.executable, "-c", "import demo; demo.wait_for_stop_signal('waiting'); "
                                "print('stopped')"], cwd=demo.PROJECT_DIR, stdin=subprocess.DEVNULL,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert waiting.stdout.readline() == "waiting\n"  # printed once the handlers are in place
    waiting.send_signal(signum)
    out, err = waiting.communicate(timeout=60)
    assert (waiting.returncode, out, err) == (0, "stopped\n", "")


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
