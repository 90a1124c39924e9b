"""The sensors: a relay on a GPIO pin, a BME280 on I2C, and simulated stand-ins for both.

The hardware is always passed in (`gpio`, `bus`), so tests drive these functions with fakes
and nothing is imported or opened at import time: RPi.GPIO, smbus2 and bme280 are imported
by the functions that need them, because this module sits on the minute path and is also
imported on machines without them.

Simulated outage schedule (`--simulate` without `--value`): every day, in UTC, the power is
OFF from 23:30 to 00:30 (across midnight), from 06:00 to 08:00 and from 14:15 to 15:45, and
ON the rest of the time. A window includes its start minute and excludes its end minute, so
00:29 is OFF and 00:30 is ON. A simulated day thus has 270 OFF and 1170 ON minutes (uptime
81.25 %), three outages starting at 06:00, 14:15 and 23:30, and its longest outage is
120 minutes (06:00-07:59).

The simulated environment is a smooth daily cycle: about 18.5-25.5 °C, warmest at 15:00 UTC;
relative humidity about 43-67 %, highest when it is coolest; pressure about 1007-1018 hPa,
drifting over a few days with a small twice-daily tide. Each minute adds a small jitter
derived from a hash of that minute, so the same instant always gives the same values.
"""

import datetime as dt
import errno
import importlib
import logging
import math
import time
from pathlib import Path

from filebuffer import VALUE_RANGES

log = logging.getLogger(__name__)

MODEL_PATH = "/proc/device-tree/model"
SIMULATE_ADVICE = "use --simulate to try it without one"
INSTALL_REQUIREMENTS = "pip install -r requirements.txt"
# RPi.GPIO can't drive the Pi 5's RP1 chip; rpi-lgpio provides the same module on top of lgpio.
INSTALL_RPI_LGPIO = "pip uninstall RPi.GPIO, then pip install rpi-lgpio (it replaces RPi.GPIO)"

BME280_CHIP_ID_REGISTER = 0xD0
BME280_CHIP_ID = 0x60
# 0x58 is the production BMP280; 0x56 and 0x57 are its samples.
BMP280_CHIP_IDS = (0x56, 0x57, 0x58)
# The I2C errors a Linux bus driver reports when nothing acknowledges the address.
NO_ANSWER_ERRNOS = frozenset(
    {errno.EREMOTEIO, errno.EIO, errno.ENXIO, errno.ETIMEDOUT, errno.EBUSY}
)
# Data registers hold these reset values until a measurement has completed (datasheet 5.4.7-9).
RAW_NO_MEASUREMENT = {"pressure": 0x80000, "temperature": 0x80000, "humidity": 0x8000}
# Decimals kept: the sensor's resolution, not the float's.
DECIMALS = {"temperature_c": 2, "humidity_pct": 1, "pressure_hpa": 2}

# Daily UTC windows ((start hour, start minute), (end hour, end minute)) when the simulated
# power is OFF; start included, end excluded. A window whose end is earlier than its start
# crosses midnight.
SIMULATED_OUTAGES = (
    ((23, 30), (0, 30)),
    ((6, 0), (8, 0)),
    ((14, 15), (15, 45)),
)
MINUTES_PER_DAY = 24 * 60


class HardwareError(Exception):
    """The sensor hardware is missing or not reachable."""


class SensorReadError(Exception):
    """The sensor is there but could not be read."""


# --- GPIO: the relay on a pin ---------------------------------------------------------------


def _require_raspberry_pi(model_path):
    """The board's model string, or HardwareError when this is not a Raspberry Pi."""
    try:
        model = Path(model_path).read_bytes().decode("utf-8", "replace").strip("\x00\n ")
    except OSError:
        raise HardwareError(f"not a Raspberry Pi (no {model_path}): {SIMULATE_ADVICE}") from None
    if "Raspberry Pi" not in model:
        raise HardwareError(f"not a Raspberry Pi ({model_path} says {model!r}): {SIMULATE_ADVICE}")
    return model


def _gpio_advice(error, model=""):
    """A HardwareError with advice for a GPIO library error we recognise, else None."""
    message = str(error)
    if "Cannot determine SOC peripheral base address" in message:
        board = model or "this board"
        return HardwareError(f"RPi.GPIO can't drive the GPIO of {board} ({message}): {INSTALL_RPI_LGPIO}")
    if "/dev/mem" in message or "permission" in message.lower():
        return HardwareError(
            "no access to /dev/gpiomem: add the user to the gpio group "
            "(sudo adduser $USER gpio) and log in again"
        )
    if "can not open gpiochip" in message:
        return HardwareError(
            f"no access to /dev/gpiochip* ({message}): add the user to the gpio group "
            "(sudo adduser $USER gpio) and log in again"
        )
    return None


def open_gpio(model_path=MODEL_PATH, importer=importlib.import_module):
    """Import and return the RPi.GPIO module, or raise HardwareError with advice."""
    model = _require_raspberry_pi(model_path)
    try:
        return importer("RPi.GPIO")
    except ImportError as error:
        advice = INSTALL_RPI_LGPIO if "Raspberry Pi 5" in model else INSTALL_REQUIREMENTS
        raise HardwareError(f"RPi.GPIO could not be imported ({error}): {advice}") from None
    except RuntimeError as error:
        raise (_gpio_advice(error, model)
               or HardwareError(f"RPi.GPIO failed to load on {model}: {error}")) from None


def _is_gpio_library_error(error):
    # RPi.GPIO raises RuntimeError; under rpi-lgpio, lgpio's own `error` (a plain Exception)
    # escapes from setmode() when /dev/gpiochip0 can't be opened.
    return isinstance(error, RuntimeError) or type(error).__module__.startswith("lgpio")


def _release_pin(gpio, pin):
    # Best effort: a failed release must not hide the reading, nor the error that ended it.
    try:
        gpio.cleanup(pin)
    except Exception as error:
        log.warning("could not release GPIO pin %s: %s", pin, error)


def read_pin(gpio, pin: int, samples: int = 5, interval: float = 0.02, sleep=time.sleep) -> int:
    """Debounced read of BCM pin: several samples within ~100 ms, majority wins. Returns 1 or 0."""
    if samples < 1 or samples % 2 == 0:
        raise ValueError(f"samples must be a positive odd number (a majority), got {samples}")
    try:
        gpio.setmode(gpio.BCM)
        # Pulled down, so a disconnected relay wire reads OFF rather than floating.
        gpio.setup(pin, gpio.IN, pull_up_down=gpio.PUD_DOWN)
        high = 0
        for index in range(samples):
            if index:
                sleep(interval)
            high += 1 if gpio.input(pin) else 0
    except Exception as error:
        if not _is_gpio_library_error(error):
            raise
        # RPi.GPIO only maps its memory at setup(), so a wrong library or missing permission
        # shows up here rather than at import.
        raise (_gpio_advice(error)
               or SensorReadError(f"could not read GPIO pin {pin} (BCM): {error}")) from None
    finally:
        # Release the pin so the next minute's run finds it free, without RPi.GPIO's
        # "channel already in use" warning.
        _release_pin(gpio, pin)
    return 1 if 2 * high > samples else 0


# --- I2C and the BME280 -------------------------------------------------------------------


def open_i2c_bus(bus_number: int, dev_dir="/dev", importer=importlib.import_module,
                 model_path=MODEL_PATH):
    """Return smbus2.SMBus(bus_number), or raise HardwareError with advice.

    The caller closes it (`bus.close()`, or use it as a context manager).
    """
    device = Path(dev_dir) / f"i2c-{bus_number}"
    if not device.exists():
        _require_raspberry_pi(model_path)  # off a Pi, advice about raspi-config would mislead
        other_bus = "" if bus_number == 1 else " (or check --bus: the header's I2C pins are bus 1)"
        raise HardwareError(
            f"I2C bus {bus_number} not found ({device}): enable I2C with "
            f"'sudo raspi-config nonint do_i2c 0' and reboot{other_bus}"
        )
    try:
        smbus2 = importer("smbus2")
    except ImportError as error:
        raise HardwareError(f"smbus2 could not be imported ({error}): {INSTALL_REQUIREMENTS}") from None
    try:
        # The path rather than the number, so the device opened is the one checked above.
        return smbus2.SMBus(str(device))
    except PermissionError:
        raise HardwareError(
            f"no access to {device}: add the user to the i2c group "
            "(sudo adduser $USER i2c) and log in again"
        ) from None
    except OSError as error:
        raise HardwareError(f"could not open I2C bus {bus_number} ({device}): {error}") from None


def _no_answer_message(address, bus_number):
    alternative = {0x76: "0x77", 0x77: "0x76"}.get(address, "0x76 or 0x77")
    return (f"no BME280 answered at 0x{address:02x} on I2C bus {bus_number} "
            f"— check wiring, or try --address {alternative}")


def _check_chip_id(chip_id, where):
    if chip_id == BME280_CHIP_ID:
        return
    if chip_id in BMP280_CHIP_IDS:
        raise SensorReadError(f"found a BMP280 (no humidity) at {where}, not a BME280")
    raise SensorReadError(
        f"unexpected chip id 0x{chip_id:02x} at {where}: "
        f"a BME280 reads 0x{BME280_CHIP_ID:02x} from register 0x{BME280_CHIP_ID_REGISTER:02x}"
    )


def _check_measured(reading, where):
    raw = getattr(reading, "uncompensated", None)
    measured = {name: getattr(raw, name, None) for name in RAW_NO_MEASUREMENT}
    # Reset values compensate to a plausible-looking ~20 °C, so catch them before compensation.
    if measured == RAW_NO_MEASUREMENT:
        raise SensorReadError(
            f"the BME280 at {where} returned no measurement "
            "(data registers still hold their reset values 0x80 0x00 0x00)"
        )


def _check_plausible(values, where):
    # filebuffer.VALUE_RANGES: the BME280's operating range; anything outside is a broken read
    if all(low <= values[key] <= high for key, (low, high) in VALUE_RANGES.items()):
        return
    raise SensorReadError(
        f"implausible reading from the BME280 at {where}: "
        f"temperature {values['temperature_c']} °C, humidity {values['humidity_pct']} %, "
        f"pressure {values['pressure_hpa']} hPa"
    )


def read_bme280(bus, address: int = 0x76, bus_number: int = 1) -> dict:
    """{'temperature_c': float, 'humidity_pct': float, 'pressure_hpa': float}, rounded.

    `bus` is an open smbus2.SMBus (or anything with its read/write methods); `bus_number`
    only names the bus in messages.
    """
    try:
        import bme280
    except ImportError as error:
        raise HardwareError(f"RPi.bme280 could not be imported ({error}): {INSTALL_REQUIREMENTS}") from None
    where = f"0x{address:02x} on I2C bus {bus_number}"
    try:
        _check_chip_id(bus.read_byte_data(address, BME280_CHIP_ID_REGISTER), where)
        calibration = bme280.load_calibration_params(bus, address)
        reading = bme280.sample(bus, address, calibration)  # forced mode: one fresh measurement
    except OSError as error:
        if error.errno in NO_ANSWER_ERRNOS:
            raise SensorReadError(_no_answer_message(address, bus_number)) from None
        raise SensorReadError(f"reading the BME280 at {where} failed: {error}") from None
    _check_measured(reading, where)
    values = {
        "temperature_c": round(float(reading.temperature), DECIMALS["temperature_c"]),
        "humidity_pct": round(float(reading.humidity), DECIMALS["humidity_pct"]),
        "pressure_hpa": round(float(reading.pressure), DECIMALS["pressure_hpa"]),
    }
    _check_plausible(values, where)
    return values


# --- simulated sensors --------------------------------------------------------------------


def _as_utc(at):
    """`at` in UTC; a naive datetime is taken to be UTC already, as everywhere in the project."""
    if at.tzinfo is None:
        return at.replace(tzinfo=dt.timezone.utc)
    return at.astimezone(dt.timezone.utc)


def _in_window(minute_of_day, start, end):
    if start <= end:
        return start <= minute_of_day < end
    return minute_of_day >= start or minute_of_day < end  # crosses midnight


def simulated_pin_value(at: dt.datetime) -> int:
    """The relay as the outage schedule has it at `at`: 0 inside a SIMULATED_OUTAGES window, else 1."""
    utc = _as_utc(at)
    minute_of_day = utc.hour * 60 + utc.minute
    for (start_h, start_m), (end_h, end_m) in SIMULATED_OUTAGES:
        if _in_window(minute_of_day, start_h * 60 + start_m, end_h * 60 + end_m):
            return 0
    return 1


def _jitter(minute, quantity, amplitude):
    """A value in [-amplitude, amplitude) fixed by the minute and quantity.

    hashlib rather than hash(): Python salts str hashes per process.
    """
    import hashlib  # here: a Pi reading its real sensors never loads OpenSSL for it

    digest = hashlib.blake2b(f"{minute}:{quantity}".encode(), digest_size=8).digest()
    unit = int.from_bytes(digest, "big") / 2**64
    return (2 * unit - 1) * amplitude


def simulated_environment(at: dt.datetime) -> dict:
    """Plausible indoor readings for `at`, the same keys and rounding as read_bme280."""
    utc = _as_utc(at)
    minute = int(utc.timestamp() // 60)  # the minute since the epoch: all that matters
    day_phase = 2 * math.pi * (minute % MINUTES_PER_DAY) / MINUTES_PER_DAY
    # cos(...) is 1 at 15:00 UTC, the warmest (and driest) time of day.
    daily = math.cos(day_phase - 2 * math.pi * 15 / 24)
    weather = math.sin(2 * math.pi * minute / (3.7 * MINUTES_PER_DAY))
    tide = math.cos(2 * day_phase)  # the atmosphere's twice-daily pressure tide
    values = {
        "temperature_c": 22.0 + 3.5 * daily + _jitter(minute, "temperature_c", 0.15),
        "humidity_pct": 55.0 - 12.0 * daily + _jitter(minute, "humidity_pct", 0.5),
        "pressure_hpa": 1012.5 + 5.0 * weather + 0.8 * tide + _jitter(minute, "pressure_hpa", 0.1),
    }
    return {key: round(value, DECIMALS[key]) for key, value in values.items()}
