"""Read the BME280 (temperature, humidity, pressure), buffer the reading, flush to DynamoDB.

    python read_env.py --device alex_rpi [--bus 1] [--address 0x76]
    python read_env.py --device demo --simulate --at 2025-06-21T00:00 --until 2025-06-22T00:00

The installed cron minute reads the BME280 with the relay, in one process: `read_pin.py
--all-sensors`. This script reads it alone.
"""

import sys

import minute_job
import sensors
from filebuffer import BME280_SENSOR
from utils import ArgumentParser, add_config_flags, load_config, run_cli, setup_logging

KEYS = minute_job.JOB_KEYS + ("bus", "address")


def build_parser():
    parser = ArgumentParser(prog="read_env.py", description=__doc__.split("\n\n")[0])
    add_config_flags(parser, KEYS)
    minute_job.add_job_flags(parser)
    return parser


def reader(config, simulate):
    """(sensor name, take_reading) of the BME280 for minute_job.run_all."""
    if simulate:
        return BME280_SENSOR, sensors.simulated_environment
    bus_number, address = config["bus"], config["address"]

    def take_reading(at):
        bus = sensors.open_i2c_bus(bus_number)
        try:
            return sensors.read_bme280(bus, address, bus_number)
        finally:
            bus.close()

    return BME280_SENSOR, take_reading


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_config(args, KEYS)
    setup_logging(config["log_dir"], "read_env")
    return minute_job.run_all(config, args, [reader(config, args.simulate)])


if __name__ == "__main__":
    sys.exit(run_cli(main))
