"""Read one GPIO pin (relay: 1 = power ON, 0 = OFF), buffer the reading, flush to DynamoDB.

    python read_pin.py --device alex_rpi --pin 4
    python read_pin.py --all-sensors        # the relay (if `pin` is set) and the BME280 (unless `bme280 = false`)
    python read_pin.py --device demo --pin 4 --simulate --value 0
    python read_pin.py --device demo --pin 4 --simulate --at 2025-06-21T00:00 --until 2025-06-22T00:00
    python read_pin.py --test-notify        # one test message to every notification channel

`--all-sensors` is what the installed cron minute runs: every sensor of the Pi in one process,
so a minute starts Python once and makes one flush (one BatchWriteItem) for all its readings.
"""

import os
import sys

import minute_job
import notify
import read_env
import sensors
from utils import (
    ArgumentParser,
    ConfigError,
    add_config_flags,
    config_file_path,
    load_config,
    run_cli,
    setup_logging,
)

KEYS = minute_job.JOB_KEYS + ("pin", "bus", "address", "bme280") + notify.KEYS


def build_parser():
    parser = ArgumentParser(prog="read_pin.py", description=__doc__.split("\n\n")[0])
    add_config_flags(parser, KEYS)
    minute_job.add_job_flags(parser)
    parser.add_argument("--all-sensors", action="store_true",
                        help="read every configured sensor in this process: the relay if pin is set, "
                             "the BME280 unless config.toml says bme280 = false")
    parser.add_argument("--value", choices=("0", "1"),
                        help="with --simulate: force the reading instead of the outage schedule")
    parser.add_argument("--test-notify", action="store_true",
                        help="send one test message to every configured channel (takes no reading)")
    return parser


def told_by_watchdog(config):
    """The silence of this device the watchdog announced (see notify.Notifier), asked once with
    short timeouts: it is asked only after a flush, while power messages wait to be sent."""
    import dynamo  # only here: a minute with the link down imports no dynamo (nor botocore)
    import watchdog_state

    client = dynamo.aws_client(read_timeout=2, attempts=1)
    return watchdog_state.watchdog_outage(client, dynamo.table_names(config["table_prefix"])["minutes"], config["device"])


def pin_reader(config, args):
    """(sensor name, take_reading) of the relay's pin for minute_job.run_all."""
    pin = config["pin"]
    if args.simulate:
        forced = None if args.value is None else int(args.value)

        def take_reading(at):
            return {"reading": sensors.simulated_pin_value(at) if forced is None else forced}
    else:
        gpio = None

        def take_reading(at):
            nonlocal gpio
            gpio = gpio or sensors.open_gpio()
            return {"reading": sensors.read_pin(gpio, pin)}

    return str(pin), take_reading


def main(argv=None):
    args = build_parser().parse_args(argv)
    config = load_config(args, KEYS)
    if args.test_notify:
        import channels

        channels.channels_from_config(config)  # configuration errors before the log is set up
        setup_logging(config["log_dir"], "read_pin")
        return notify.test_notify(config)
    if config["pin"] is None and not args.all_sensors:
        config_file, _explicit = config_file_path(os.environ)
        raise ConfigError(f"no pin given: set pin (the relay's BCM pin number, 0-27) in {config_file}, "
                          "where the cron job finds it, or pass --pin")
    if args.all_sensors and config["pin"] is None and not config["bme280"]:
        raise ConfigError("no sensor configured: set pin (the relay's BCM number) in config.toml, "
                          "or remove bme280 = false if the Pi has a BME280")
    if args.value is not None and not args.simulate:
        raise ConfigError("--value needs --simulate")
    if args.value is not None and config["pin"] is None:
        raise ConfigError("--value needs a pin (the relay's BCM number)")
    readers = [] if config["pin"] is None else [pin_reader(config, args)]
    if args.all_sensors and config["bme280"]:
        readers.append(read_env.reader(config, args.simulate))
    notifier = (notify.Notifier(config, history=args.until is not None, watchdog_outage=lambda: told_by_watchdog(config))
                if config["pin"] is not None else None)
    setup_logging(config["log_dir"], "read_pin")
    return minute_job.run_all(config, args, readers, notifier=notifier)


if __name__ == "__main__":
    sys.exit(run_cli(main))
