"""`make demo`: the whole pipeline on this machine, with no Pi and no AWS account.

Starts a local DynamoDB+S3 endpoint (moto's server) on 127.0.0.1, creates the tables and a
bucket, takes two days of simulated readings through the real scripts for a user in Kyiv
(25 and 26 October 2025: the clocks go back on the 26th, a 25-hour day; the Pi is down from
02:00 to 04:30 local time on the first day, so some minutes are unknown), aggregates them
into Kyiv's days, mirrors Parquet to the bucket and to demo-output/parquet, runs the notebook
headless to PNG plots, and shows what the simulated outages would have notified. Everything
it writes goes to demo-output/; it stops the endpoint it started.
"""

import argparse
import datetime as dt
import logging
import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PROJECT_DIR = Path(__file__).resolve().parent
DEVICE = "demo_rpi"
PIN = "4"
TIMEZONE = "Europe/Kyiv"
FIRST_DAY = dt.date(2025, 10, 25)  # the next day, 26 October, Kyiv's clocks go back: 25 hours


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def demo_settings(endpoint, output_dir):
    """The variables that point the project's commands at the demo's endpoint and files.

    The demo's config.toml (device, bucket, mirror), buffer and logs, not the project's; the
    paths absolute, since a relative buffer_dir would be taken from the project folder.
    """
    output_dir = Path(output_dir).resolve()
    return {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "BLACKOUT_CONFIG": str(output_dir / "config.toml"),
        "BLACKOUT_BUFFER_DIR": str(output_dir / "buffer"),
        "BLACKOUT_LOG_DIR": str(output_dir / "logs"),
    }


def demo_env(endpoint, output_dir):
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BLACKOUT_", "AWS_"))}
    env.update(demo_settings(endpoint, output_dir))
    return env


def run(env, script, *args):
    command = [sys.executable, str(PROJECT_DIR / script), *args]
    started = time.monotonic()
    result = subprocess.run(command, env=env, capture_output=True, text=True)
    shown = " ".join(["python", script, *args])
    print(f"$ {shown}   ({time.monotonic() - started:.1f}s)")
    for line in (result.stdout + result.stderr).splitlines():
        print(f"  {line}")
    if result.returncode != 0:
        raise SystemExit(f"Error: {script} exited {result.returncode} (its output is above)")
    return result


BUCKET = "demo-blackout-monitor"


def pipeline(endpoint, output_dir, first=FIRST_DAY, days=2, timezone=TIMEZONE):
    """Tables, bucket, `days` simulated local days from `first` in `timezone`, aggregates, mirror.

    Returns (env, first date, last date).
    """
    from utils import zone

    local = zone(timezone)
    start = dt.datetime.combine(first, dt.time(), tzinfo=local)
    end = dt.datetime.combine(first + dt.timedelta(days=days), dt.time(), tzinfo=local)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.toml").write_text(
        f'device = "{DEVICE}"\ns3_bucket = "{BUCKET}"\nparquet_dir = "{output_dir / "parquet"}"\n'
        f'timezone = "{timezone}"\n')
    env = demo_env(endpoint, output_dir)
    run(env, "dynamo.py", "create-tables")
    import boto3  # the demo's own bucket; the project never creates buckets

    boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="demo",
                 aws_secret_access_key="demo").create_bucket(Bucket=BUCKET)
    # The Pi was down from 02:00 to 04:30 local time on the first day: unknown minutes, not OFF.
    down = (start.replace(hour=2), start.replace(hour=4, minute=30))
    for low, high in ((start, down[0]), (down[1], end)):
        span = ["--simulate", "--at", low.isoformat(), "--until", high.isoformat()]
        run(env, "read_pin.py", "--pin", PIN, *span)
        run(env, "read_env.py", *span)
    run(env, "aggregate.py")
    run(env, "notify.py", "list")
    return env, first, first + dt.timedelta(days=days - 1)


def execute_notebook(parameters, timeout=180):
    """Run visualise.ipynb headless with `parameters` in place of its parameters cell."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.read(PROJECT_DIR / "visualise.ipynb", as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    # after the defaults, as papermill does: a parameter not given keeps its default
    cell.source += "\n" + "\n".join(f"{name} = {value!r}" for name, value in parameters.items())
    from traitlets.config import Config

    os.environ.setdefault("MPLBACKEND", "Agg")
    # the kernel talks to us over Unix sockets, not TCP on 127.0.0.1: nothing to encrypt, no
    # port other users of the machine could reach, and no warning from ipykernel about either
    # (an absolute socket path: the kernel runs in PROJECT_DIR, the caller anywhere)
    with tempfile.TemporaryDirectory(prefix="blackout-kernel-") as sockets:
        settings = Config()
        settings.KernelManager.transport = "ipc"
        settings.KernelManager.ip = os.path.join(sockets, "kernel")
        NotebookClient(notebook, timeout=timeout, kernel_name="python3", config=settings,
                       resources={"metadata": {"path": str(PROJECT_DIR)}}).execute()
    return notebook


def plots(output_dir, first, last):
    """The notebook's figures as PNG files in output_dir/plots, from the local Parquet mirror."""
    started = time.monotonic()
    execute_notebook({"SOURCE": str(output_dir / "parquet"), "DEVICE": DEVICE, "PIN_SENSOR": PIN,
                      "ENV_SENSOR": "bme280", "START": first.isoformat(), "END": last.isoformat(), "TIMEZONE": TIMEZONE,
                      "TABLE_PREFIX": "blackout-monitor", "OUTPUT_DIR": str(output_dir / "plots")})
    print(f"$ (visualise.ipynb, headless)   ({time.monotonic() - started:.1f}s)")
    return sorted((output_dir / "plots").glob("*.png"))


PLOT_DESCRIPTIONS = {
    "daily_uptime.png": "each Kyiv day's hours ON, OFF and without a reading; its outages and uptime",
    "environment.png": "temperature, humidity, pressure; no line where there was no reading",
    "power_timeline.png": "each Kyiv day minute by minute (the 26th is 25 h long): ON green, OFF orange, no reading grey",
}


def shown_path(path):
    """A path as the user can type it from here: relative when it is below the current folder."""
    try:
        return str(Path(path).resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def plot_lines(pngs):
    """What the demo prints under "Plots:", one line per file with what it shows."""
    width = max(len(shown_path(png)) for png in pngs)
    return [f"  {shown_path(png):<{width}}    {PLOT_DESCRIPTIONS.get(Path(png).name, '')}".rstrip()
            for png in pngs]


def try_it_lines(endpoint, output_dir, hour):
    """The settings that point the project's commands at the demo, then commands to try (the
    queries: the minutes of `hour`, the hours of its day, the days of its month)."""
    settings = demo_settings(endpoint, output_dir)
    prefix = f"device#{DEVICE}#sensor#{PIN}#date#"
    lines = ["  export " + " ".join(f"{name}={shlex.quote(value)}" for name, value in settings.items()),
             "  .venv/bin/python notify.py list",
             f"  .venv/bin/python dynamo.py status --device {DEVICE}"]
    for table, pk in (("minutes", f"{prefix}{hour:%Y-%m-%d-%H}"), ("hours", f"{prefix}{hour:%Y-%m-%d}"),
                      ("days", f"{prefix}{hour:%Y-%m}")):
        lines.append(f"  .venv/bin/aws dynamodb query --table-name blackout-monitor-{table} "
                     f"--key-condition-expression 'pk = :pk' "
                     f"--expression-attribute-values '{{\":pk\":{{\"S\":\"{pk}\"}}}}'")
    return lines


def status_page(env, output_dir, last, timezone=TIMEZONE):
    """The demo device's status page as of the end of its last day: output_dir/page/index.html."""
    from utils import zone

    at = dt.datetime.combine(last, dt.time(23, 59), tzinfo=zone(timezone))
    run(env, "status_page.py", "--out", str(Path(output_dir).resolve() / "page"), "--at", at.isoformat())
    return Path(output_dir).resolve() / "page" / "index.html"


class StopRequested(Exception):
    """SIGTERM arrived while the demo waited."""


def wait_for_stop_signal(announce):
    """Block until Ctrl-C (SIGINT) or SIGTERM, not on stdin: `--wait < /dev/null &` works too.

    `announce` is printed once the handlers are in place, so a signal sent after it is seen.
    """
    def stop(_signum, _frame):
        raise StopRequested

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        print(announce, flush=True)
        while True:
            signal.pause()  # returns after any other signal (a child's SIGCHLD): wait on
    except (KeyboardInterrupt, StopRequested):
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(PROJECT_DIR / "demo-output"),
                        help="where the demo writes (wiped first)")
    parser.add_argument("--wait", action="store_true",
                        help="keep the endpoint up until Ctrl-C or SIGTERM, to try the commands it prints")
    args = parser.parse_args(argv)
    output_dir = Path(args.output)
    shutil.rmtree(output_dir, ignore_errors=True)

    from moto.server import ThreadedMotoServer  # a development dependency, not a runtime one

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # the endpoint's request log

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    print(f"local DynamoDB/S3 endpoint: {endpoint} (moto)")
    try:
        _env, first, last = pipeline(endpoint, output_dir)
        pngs = plots(output_dir, first, last)
        print("\nPlots:")
        print("\n".join(plot_lines(pngs)))
        page = status_page(_env, output_dir, last)
        print(f"\nStatus page (open it in a browser): {page.as_uri()}")
        print("\nTry these in another shell while the demo waits:" if args.wait else
              "\nTo try these, run '.venv/bin/python demo.py --wait' (this endpoint stops when the demo ends):")
        hour = dt.datetime.combine(last, dt.time(12), tzinfo=dt.timezone.utc)
        print("\n".join(try_it_lines(endpoint, output_dir, hour)))
        print(f"\nParquet mirror: {shown_path(output_dir / 'parquet')} and s3://{BUCKET}/blackout-monitor/ "
              "(on the endpoint)")
        print(f"buffer and logs: {shown_path(output_dir)}")
        if args.wait:
            wait_for_stop_signal(f"\nThe endpoint stays up until Ctrl-C (or kill {os.getpid()}).")
    except KeyboardInterrupt:
        print("demo: interrupted", file=sys.stderr)
        return 130
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
