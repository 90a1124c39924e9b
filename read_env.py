"""Read the BME280 (temperature, humidity, pressure), buffer the reading, flush to DynamoDB.

    python read_env.py --device alex_rpi [--bus 1] [--address 0x76]
    python read_env.py --device demo --simulate --at 2025-06-21T00:00 --until 2025-06-22T00:00
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


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_config(args, KEYS)
    setup_logging(config["log_dir"], "read_env")
    if args.simulate:
        take_reading = sensors.simulated_environment
    else:
        bus_number, address = config["bus"], config["address"]

        def take_reading(at):
            bus = sensors.open_i2c_bus(bus_number)
            try:
                return sensors.read_bme280(bus, address, bus_number)
            finally:
                bus.close()

    return minute_job.run(config, args, BME280_SENSOR, take_reading)


if __name__ == "__main__":
    sys.exit(run_cli(main))
