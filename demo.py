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
import shutil
import socket
import subprocess
import sys
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


def demo_env(endpoint, output_dir):
    env = {name: value for name, value in os.environ.items()
           if not name.startswith(("BLACKOUT_", "AWS_"))}
    env.update({
        "AWS_ACCESS_KEY_ID": "demo",
        "AWS_SECRET_ACCESS_KEY": "demo",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": endpoint,
        "BLACKOUT_CONFIG": str(output_dir / "config.toml"),
        "BLACKOUT_BUFFER_DIR": str(output_dir / "buffer"),
        "BLACKOUT_LOG_DIR": str(output_dir / "logs"),
    })
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
        raise SystemExit(f"demo: {script} exited {result.returncode}")
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
    os.environ.setdefault("MPLBACKEND", "Agg")
    NotebookClient(notebook, timeout=timeout, kernel_name="python3",
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


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(PROJECT_DIR / "demo-output"),
                        help="where the demo writes (wiped first)")
    parser.add_argument("--wait", action="store_true", help="keep the endpoint up until Enter is pressed")
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
        for png in pngs:
            print(f"  {png}")
        hour = dt.datetime.combine(last, dt.time(12), tzinfo=dt.timezone.utc)
        credentials = (f"AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo "
                       "AWS_SECRET_ACCESS_KEY=demo")
        prefix = f"device#{DEVICE}#sensor#{PIN}#date#"
        print("\nTry these while the demo waits (press Enter to stop the endpoint):" if args.wait else
              "\nQueries to try: the endpoint stops when the demo ends, so run "
              "'.venv/bin/python demo.py --wait' to keep it up while you do:")
        for table, pk in (("minutes", f"{prefix}{hour:%Y-%m-%d-%H}"), ("hours", f"{prefix}{hour:%Y-%m-%d}"),
                          ("days", f"{prefix}{hour:%Y-%m}")):
            print(f"  {credentials} .venv/bin/aws dynamodb query --table-name blackout-monitor-{table} "
                  f"--key-condition-expression 'pk = :pk' "
                  f"--expression-attribute-values '{{\":pk\":{{\"S\":\"{pk}\"}}}}'")
        print(f"\nParquet mirror: {output_dir / 'parquet'} and s3://{BUCKET}/blackout-monitor/ (on the endpoint)")
        print(f"buffer and logs: {output_dir}")
        if args.wait:
            input()
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
