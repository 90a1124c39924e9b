"""`make demo`: the whole pipeline on this machine, with no Pi and no AWS account.

Starts a local DynamoDB+S3 endpoint (moto's server) on 127.0.0.1, creates the tables, takes
simulated readings through the real scripts, and shows what landed. Everything it writes
goes to demo-output/; it stops the endpoint it started.
"""

import argparse
import datetime as dt
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


def pipeline(endpoint, output_dir, days=2, now=None):
    """Create tables, generate `days` simulated days up to now, flush. Returns the env used."""
    now = (now or dt.datetime.now(dt.timezone.utc)).replace(second=0, microsecond=0)
    start = (now - dt.timedelta(days=days)).replace(hour=0, minute=0)
    output_dir.mkdir(parents=True, exist_ok=True)
    (output_dir / "config.toml").write_text(f'device = "{DEVICE}"\n')
    env = demo_env(endpoint, output_dir)
    run(env, "dynamo.py", "create-tables")
    span = ["--simulate", "--at", start.strftime("%Y-%m-%dT%H:%M"), "--until", now.strftime("%Y-%m-%dT%H:%M")]
    run(env, "read_pin.py", "--pin", PIN, *span)
    run(env, "read_env.py", *span)
    if (PROJECT_DIR / "aggregate.py").exists():
        run(env, "aggregate.py")
    run(env, "dynamo.py", "status")
    return env


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", default=str(PROJECT_DIR / "demo-output"),
                        help="where the demo writes (wiped first)")
    args = parser.parse_args(argv)
    output_dir = Path(args.output)
    shutil.rmtree(output_dir, ignore_errors=True)

    from moto.server import ThreadedMotoServer  # a development dependency, not a runtime one

    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    print(f"local DynamoDB/S3 endpoint: {endpoint} (moto)")
    try:
        pipeline(endpoint, output_dir)
        hour = dt.datetime.now(dt.timezone.utc) - dt.timedelta(days=1)
        pk = f"device#{DEVICE}#sensor#{PIN}#date#{hour:%Y-%m-%d-%H}"
        print("\nTry it while the endpoint runs (this demo stops it on exit):")
        print(f"  AWS_ENDPOINT_URL={endpoint} AWS_DEFAULT_REGION=us-east-1 AWS_ACCESS_KEY_ID=demo "
              "AWS_SECRET_ACCESS_KEY=demo .venv/bin/aws dynamodb query "
              "--table-name blackout-monitor-minutes --key-condition-expression 'pk = :pk' "
              f"--expression-attribute-values '{{\":pk\":{{\"S\":\"{pk}\"}}}}'")
        print(f"\nbuffer and logs: {output_dir}")
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
