"""Tests for sensors.py: fakes stand in for RPi.GPIO, smbus2 and the board model file."""

import datetime as dt
import errno
import logging
import os
import struct
import subprocess
import sys
import types

import pytest

import sensors
from sensors import HardwareError, SensorReadError

UTC = dt.timezone.utc
PI4_MODEL = b"Raspberry Pi 4 Model B Rev 1.4\x00"  # device-tree strings end in a NUL
PI5_MODEL = b"Raspberry Pi 5 Model B Rev 1.0\x00"
GPIO_GROUP_ADVICE = "add the user to the gpio group (sudo adduser $USER gpio) and log in again"
RPI_LGPIO_ADVICE = "pip uninstall RPi.GPIO, then pip install rpi-lgpio (it replaces RPi.GPIO)"


# --- fakes --------------------------------------------------------------------------------


class FakeGPIO:
    """Stands in for the RPi.GPIO module: scripted input values, every call recorded."""

    BCM, IN, PUD_DOWN = 11, 1, 21  # RPi.GPIO's values
    HIGH, LOW = 1, 0

    def __init__(self, values=(), failures=None):
        self.values = list(values)
        self.failures = dict(failures or {})  # method name -> exception it raises
        self.calls = []

    def _record(self, name, *args, **kwargs):
        self.calls.append((name, args, kwargs))
        if name in self.failures:
            raise self.failures[name]

    def setmode(self, mode):
        self._record("setmode", mode)

    def setup(self, pin, direction, pull_up_down=None):
        self._record("setup", pin, direction, pull_up_down=pull_up_down)

    def input(self, pin):
        self._record("input", pin)
        return self.values.pop(0)

    def cleanup(self, pin=None):
        self._record("cleanup", pin)

    def called(self, name):
        return [call for call in self.calls if call[0] == name]


class FakeSMBus:
    """Stands in for smbus2.SMBus: registers are a dict {(address, register): byte}.

    An address with no registers doesn't answer (EREMOTEIO, as Linux reports a missing ACK);
    `fail(code)` makes every access, or those of some registers, raise OSError(code).
    """

    def __init__(self, registers=None):
        self.registers = dict(registers or {})
        self.writes = []
        self.error = None
        self.failing_registers = None

    def fail(self, code, registers=None):
        self.error = OSError(code, os.strerror(code))
        self.failing_registers = registers

    def _access(self, address, register):
        if self.error and (self.failing_registers is None or register in self.failing_registers):
            raise self.error
        if not any(known == address for known, _ in self.registers):
            raise OSError(errno.EREMOTEIO, os.strerror(errno.EREMOTEIO))

    def read_byte_data(self, address, register):
        self._access(address, register)
        return self.registers.get((address, register), 0x00)

    def read_word_data(self, address, register):
        low = self.read_byte_data(address, register)
        high = self.read_byte_data(address, register + 1)
        return low | high << 8  # SMBus words are little endian

    def read_i2c_block_data(self, address, start, length):
        return [self.read_byte_data(address, start + offset) for offset in range(length)]

    def write_byte_data(self, address, register, value):
        self._access(address, register)
        self.writes.append((address, register, value))
        self.registers[(address, register)] = value


def importer_raising(error):
    """An importer (like importlib.import_module) whose every import fails with `error`."""

    def importer(name):
        raise error

    return importer


@pytest.fixture
def board_model(tmp_path):
    """Write a device-tree model file; returns its path."""

    def write(content):
        path = tmp_path / "model"
        path.write_bytes(content)
        return path

    return write


# --- read_pin -----------------------------------------------------------------------------


@pytest.mark.parametrize("values, expected", [
    ([1, 1, 1, 1, 1], 1),
    ([0, 0, 0, 0, 0], 0),
    ([1, 1, 0, 1, 1], 1),   # one bounce while ON
    ([0, 1, 0, 0, 1], 0),   # two bounces while OFF
    ([1, 0, 1, 0, 1], 1),   # 3 of 5
    ([0, 1, 0, 1, 0], 0),   # 2 of 5
    ([True, False, True, True, False], 1),  # RPi.GPIO.HIGH/LOW and bools count alike
])
def test_read_pin_majority_of_samples_wins(values, expected):
    gpio = FakeGPIO(values)
    assert sensors.read_pin(gpio, 4, sleep=lambda seconds: None) == expected
    assert gpio.values == []


def test_read_pin_sets_up_a_pulled_down_bcm_input_and_releases_only_that_pin():
    gpio = FakeGPIO([1, 1, 1, 1, 1])
    sensors.read_pin(gpio, 17, sleep=lambda seconds: None)
    assert gpio.calls == [
        ("setmode", (FakeGPIO.BCM,), {}),
        ("setup", (17, FakeGPIO.IN), {"pull_up_down": FakeGPIO.PUD_DOWN}),
        *[("input", (17,), {})] * 5,
        ("cleanup", (17,), {}),
    ]


def test_read_pin_spaces_samples_to_stay_within_100_ms():
    slept = []
    sensors.read_pin(FakeGPIO([0] * 5), 4, sleep=slept.append)
    assert slept == [0.02] * 4  # between samples, none after the last
    assert sum(slept) <= 0.1


def test_read_pin_samples_count_is_configurable():
    gpio = FakeGPIO([0, 1, 1])
    assert sensors.read_pin(gpio, 4, samples=3, sleep=lambda seconds: None) == 1
    assert len(gpio.called("input")) == 3


@pytest.mark.parametrize("samples", [0, 2, 4, -1])
def test_read_pin_rejects_sample_counts_without_a_majority(samples):
    with pytest.raises(ValueError, match=f"got {samples}"):
        sensors.read_pin(FakeGPIO([1] * 5), 4, samples=samples)


@pytest.mark.parametrize("failing", ["setmode", "setup", "input"])
def test_read_pin_gpio_error_names_the_pin_and_still_releases_it(failing):
    gpio = FakeGPIO([1] * 5, failures={failing: RuntimeError("Unknown error")})
    with pytest.raises(SensorReadError) as caught:
        sensors.read_pin(gpio, 4, sleep=lambda seconds: None)
    assert str(caught.value) == "could not read GPIO pin 4 (BCM): Unknown error"
    assert gpio.called("cleanup") == [("cleanup", (4,), {})]


def test_read_pin_on_a_pi5_with_rpi_gpio_advises_rpi_lgpio():
    # RPi.GPIO imports fine on a Pi 5; it fails when setup() maps the GPIO memory.
    error = RuntimeError("Cannot determine SOC peripheral base address")
    gpio = FakeGPIO([1] * 5, failures={"setup": error})
    with pytest.raises(HardwareError) as caught:
        sensors.read_pin(gpio, 4, sleep=lambda seconds: None)
    assert str(caught.value) == (
        "RPi.GPIO can't drive the GPIO of this board "
        f"(Cannot determine SOC peripheral base address): {RPI_LGPIO_ADVICE}"
    )
    assert gpio.called("cleanup") == [("cleanup", (4,), {})]


def test_read_pin_without_gpio_permission_advises_the_gpio_group():
    error = RuntimeError("No access to /dev/mem.  Try running as root!")
    gpio = FakeGPIO([1] * 5, failures={"setup": error})
    with pytest.raises(HardwareError) as caught:
        sensors.read_pin(gpio, 4, sleep=lambda seconds: None)
    assert str(caught.value) == f"no access to /dev/gpiomem: {GPIO_GROUP_ADVICE}"


def test_read_pin_lgpio_error_is_a_gpio_error_too():
    # rpi-lgpio lets lgpio's own exception class escape when /dev/gpiochip0 won't open.
    lgpio_error = type("error", (Exception,), {"__module__": "lgpio"})
    gpio = FakeGPIO([1] * 5, failures={"setmode": lgpio_error("can not open gpiochip")})
    with pytest.raises(HardwareError) as caught:
        sensors.read_pin(gpio, 4, sleep=lambda seconds: None)
    assert str(caught.value) == f"no access to /dev/gpiochip* (can not open gpiochip): {GPIO_GROUP_ADVICE}"


def test_read_pin_lets_programming_errors_through_but_releases_the_pin():
    error = ValueError("The channel sent is invalid on a Raspberry Pi")
    gpio = FakeGPIO([1] * 5, failures={"setup": error})
    with pytest.raises(ValueError, match="channel sent is invalid"):
        sensors.read_pin(gpio, 99, sleep=lambda seconds: None)
    assert gpio.called("cleanup") == [("cleanup", (99,), {})]


def test_read_pin_failed_release_does_not_lose_the_reading(caplog):
    gpio = FakeGPIO([0] * 5, failures={"cleanup": RuntimeError("cleanup failed")})
    with caplog.at_level(logging.WARNING, logger="sensors"):
        assert sensors.read_pin(gpio, 4, sleep=lambda seconds: None) == 0
    assert caplog.messages == ["could not release GPIO pin 4: cleanup failed"]


# --- open_gpio ----------------------------------------------------------------------------


def test_open_gpio_returns_the_module_on_a_pi(board_model):
    imported = []
    gpio_module = types.ModuleType("RPi.GPIO")

    def importer(name):
        imported.append(name)
        return gpio_module

    assert sensors.open_gpio(board_model(PI4_MODEL), importer=importer) is gpio_module
    assert imported == ["RPi.GPIO"]


def test_open_gpio_without_a_model_file_is_not_a_pi(tmp_path):
    missing = tmp_path / "model"
    with pytest.raises(HardwareError) as caught:
        sensors.open_gpio(missing, importer=importer_raising(AssertionError("must not import")))
    assert str(caught.value) == f"not a Raspberry Pi (no {missing}): use --simulate to try it without one"


def test_open_gpio_on_another_board_names_the_model(board_model):
    path = board_model(b"Pine64 RockPro64 v2.1\x00")
    with pytest.raises(HardwareError) as caught:
        sensors.open_gpio(path, importer=importer_raising(AssertionError("must not import")))
    assert str(caught.value) == (
        f"not a Raspberry Pi ({path} says 'Pine64 RockPro64 v2.1'): use --simulate to try it without one"
    )


@pytest.mark.parametrize("model, error, message", [
    pytest.param(
        PI5_MODEL, RuntimeError("Cannot determine SOC peripheral base address"),
        "RPi.GPIO can't drive the GPIO of Raspberry Pi 5 Model B Rev 1.0 "
        f"(Cannot determine SOC peripheral base address): {RPI_LGPIO_ADVICE}",
        id="pi5-rpi-gpio",
    ),
    pytest.param(
        PI4_MODEL, ModuleNotFoundError("No module named 'RPi'"),
        "RPi.GPIO could not be imported (No module named 'RPi'): pip install -r requirements.txt",
        id="pi4-missing-package",
    ),
    pytest.param(
        PI5_MODEL, ModuleNotFoundError("No module named 'RPi'"),
        f"RPi.GPIO could not be imported (No module named 'RPi'): {RPI_LGPIO_ADVICE}",
        id="pi5-missing-package",
    ),
    pytest.param(
        PI4_MODEL, RuntimeError("No access to /dev/mem.  Try running as root!"),
        f"no access to /dev/gpiomem: {GPIO_GROUP_ADVICE}",
        id="no-permission",
    ),
    pytest.param(
        PI4_MODEL, RuntimeError("Something else"),
        "RPi.GPIO failed to load on Raspberry Pi 4 Model B Rev 1.4: Something else",
        id="unknown-runtime-error",
    ),
])
def test_open_gpio_failures_explain_the_fix(board_model, model, error, message):
    with pytest.raises(HardwareError) as caught:
        sensors.open_gpio(board_model(model), importer=importer_raising(error))
    assert str(caught.value) == message


# --- open_i2c_bus -------------------------------------------------------------------------


def fake_smbus2(opened, error=None):
    """A stand-in smbus2 module whose SMBus records the path it opens, or raises `error`."""

    class SMBus:
        def __init__(self, bus):
            if error:
                raise error
            opened.append(bus)

    return types.SimpleNamespace(SMBus=SMBus)


def test_open_i2c_bus_opens_the_checked_device(tmp_path, board_model):
    (tmp_path / "i2c-1").touch()
    opened = []
    bus = sensors.open_i2c_bus(1, dev_dir=tmp_path, importer=lambda name: fake_smbus2(opened),
                               model_path=board_model(PI4_MODEL))
    assert type(bus).__name__ == "SMBus"
    assert opened == [str(tmp_path / "i2c-1")]


def test_open_i2c_bus_missing_device_says_how_to_enable_i2c(tmp_path, board_model):
    with pytest.raises(HardwareError) as caught:
        sensors.open_i2c_bus(1, dev_dir=tmp_path, model_path=board_model(PI4_MODEL))
    assert str(caught.value) == (
        f"I2C bus 1 not found ({tmp_path}/i2c-1): enable I2C with "
        "'sudo raspi-config nonint do_i2c 0' and reboot"
    )


def test_open_i2c_bus_missing_other_bus_also_questions_the_bus_number(tmp_path, board_model):
    with pytest.raises(HardwareError) as caught:
        sensors.open_i2c_bus(3, dev_dir=tmp_path, model_path=board_model(PI4_MODEL))
    assert str(caught.value) == (
        f"I2C bus 3 not found ({tmp_path}/i2c-3): enable I2C with "
        "'sudo raspi-config nonint do_i2c 0' and reboot (or check --bus: the header's I2C pins are bus 1)"
    )


def test_open_i2c_bus_off_a_pi_points_to_simulate(tmp_path):
    missing_model = tmp_path / "model"
    with pytest.raises(HardwareError) as caught:
        sensors.open_i2c_bus(1, dev_dir=tmp_path, model_path=missing_model)
    assert str(caught.value) == f"not a Raspberry Pi (no {missing_model}): use --simulate to try it without one"


def test_open_i2c_bus_without_permission_advises_the_i2c_group(tmp_path):
    (tmp_path / "i2c-1").touch()
    importer = lambda name: fake_smbus2([], PermissionError(errno.EACCES, "Permission denied"))
    with pytest.raises(HardwareError) as caught:
        sensors.open_i2c_bus(1, dev_dir=tmp_path, importer=importer)
    assert str(caught.value) == (
        f"no access to {tmp_path}/i2c-1: add the user to the i2c group "
        "(sudo adduser $USER i2c) and log in again"
    )


def test_open_i2c_bus_without_smbus2_says_to_install_requirements(tmp_path):
    (tmp_path / "i2c-1").touch()
    importer = importer_raising(ModuleNotFoundError("No module named 'smbus2'"))
    with pytest.raises(HardwareError) as caught:
        sensors.open_i2c_bus(1, dev_dir=tmp_path, importer=importer)
    assert str(caught.value) == (
        "smbus2 could not be imported (No module named 'smbus2'): pip install -r requirements.txt"
    )


def test_open_i2c_bus_on_a_file_that_is_no_i2c_device_names_the_error(tmp_path):
    pytest.importorskip("smbus2")
    (tmp_path / "i2c-1").write_bytes(b"")  # the real smbus2: its I2C_FUNCS ioctl fails
    with pytest.raises(HardwareError) as caught:
        sensors.open_i2c_bus(1, dev_dir=tmp_path)
    assert str(caught.value) == (
        f"could not open I2C bus 1 ({tmp_path}/i2c-1): [Errno 25] Inappropriate ioctl for device"
    )


# --- read_bme280: known answers -------------------------------------------------------------

# Trimming parameters as the chip stores them at 0x88-0xA1 and 0xE1-0xE7 (datasheet 5.4.2).
BOSCH_EXAMPLE_TRIMS = {
    # The worked example of the BMP280 datasheet (BST-BMP280-DS001, 3.12 / 8.1); the BME280
    # uses the same temperature and pressure formulas. It has no humidity, so the humidity
    # trims below are pimoroni's.
    "T": (27504, 26435, -1000),
    "P": (36477, -10685, 3024, 2855, 140, -7, 15500, -14600, 6000),
    "H": (75, 376, 0, 286, 50, 30),
}
PIMORONI_TRIMS = {
    # pimoroni/bme280-python tests/calibration.py
    "T": (28009, 25654, 50),
    "P": (39145, -10750, 3024, 5667, -120, -7, 15500, -14600, 6000),
    "H": (75, 376, 0, 286, 50, 30),
}
# Data registers 0xF7-0xFE: press msb, lsb, xlsb<<4, temp msb, lsb, xlsb<<4, hum msb, lsb.
BOSCH_EXAMPLE_RAW = (
    0x65, 0x5A, 0xC0,  # adc_P = 0x655AC = 415148
    0x7E, 0xED, 0x00,  # adc_T = 0x7EED0 = 519888
    0x5D, 0xC0,        # adc_H = 0x5DC0 = 24000
)
PIMORONI_RAW = (
    0x4F, 0xCA, 0x00,  # adc_P = 0x4FCA0 = 326816
    0x81, 0x32, 0x70,  # adc_T = 0x81327 = 529191
    0x76, 0x49,        # adc_H = 0x7649 = 30281
)
# Bosch example, worked with the datasheet's double-precision formulas:
#   T: var1 = (519888/16384 - 27504/1024) * 26435 = 128793.1787
#      var2 = (519888/131072 - 27504/8192)^2 * -1000 = -370.8917
#      t_fine = 128422.2870, T = t_fine / 5120 = 25.0825 °C            (datasheet: 25.08)
#   P: 100653.2668 Pa = 1006.5327 hPa                                   (datasheet: 100653.27)
#   H: x = t_fine - 76800 = 51622.287
#      (24000 - (286*64 + 50/16384*x)) = 5538.46
#      * 376/65536 * (1 + 30/67108864*x*(1 + 0*x)) = 5538.46 * 0.0058697 = 32.509
#      * (1 - 75*32.509/524288) = 32.358 %
# pimoroni's expected values (tests/test_compensation.py): T 24.7894877676 °C,
# P 1006.61517564 hPa, H 68.66996648709039 %.
KNOWN_ANSWERS = [
    pytest.param(BOSCH_EXAMPLE_TRIMS, BOSCH_EXAMPLE_RAW,
                 {"temperature_c": 25.08, "humidity_pct": 32.4, "pressure_hpa": 1006.53},
                 id="bosch-datasheet-example"),
    pytest.param(PIMORONI_TRIMS, PIMORONI_RAW,
                 {"temperature_c": 24.79, "humidity_pct": 68.7, "pressure_hpa": 1006.62},
                 id="pimoroni-bme280-python"),
]


def bme280_registers(trims, raw, address=0x76, chip_id=0x60):
    """The register map of a BME280 holding `trims` and measurement `raw`."""
    h1, h2, h3, h4, h5, h6 = trims["H"]
    blocks = {
        0x88: struct.pack("<Hhh", *trims["T"]) + struct.pack("<Hhhhhhhhh", *trims["P"]),
        0xA1: struct.pack("<B", h1),
        # H4 and H5 are 12-bit values sharing the nibbles of 0xE5.
        0xE1: struct.pack("<hbBBBb", h2, h3, h4 >> 4, (h4 & 0x0F) | (h5 & 0x0F) << 4, h5 >> 4, h6),
        0xF7: bytes(raw),
        0xD0: bytes([chip_id]),
    }
    return {
        (address, start + offset): byte
        for start, block in blocks.items()
        for offset, byte in enumerate(block)
    }


@pytest.mark.parametrize("trims, raw, expected", KNOWN_ANSWERS)
def test_read_bme280_known_answers(trims, raw, expected):
    bus = FakeSMBus(bme280_registers(trims, raw))
    assert sensors.read_bme280(bus) == expected


def test_read_bme280_at_0x77_triggers_one_forced_measurement():
    bus = FakeSMBus(bme280_registers(PIMORONI_TRIMS, PIMORONI_RAW, address=0x77))
    values = sensors.read_bme280(bus, address=0x77)
    assert values == {"temperature_c": 24.79, "humidity_pct": 68.7, "pressure_hpa": 1006.62}
    # ctrl_hum = humidity x1; ctrl_meas = temperature x1, pressure x1, forced mode (0b001_001_01).
    assert bus.writes == [(0x77, 0xF2, 0x01), (0x77, 0xF4, 0x25)]


def test_read_bme280_finding_a_bmp280_says_so():
    bus = FakeSMBus(bme280_registers(PIMORONI_TRIMS, PIMORONI_RAW, chip_id=0x58))
    with pytest.raises(SensorReadError) as caught:
        sensors.read_bme280(bus)
    assert str(caught.value) == "found a BMP280 (no humidity) at 0x76 on I2C bus 1, not a BME280"
    assert bus.writes == []


def test_read_bme280_unknown_chip_names_the_id_read():
    bus = FakeSMBus(bme280_registers(PIMORONI_TRIMS, PIMORONI_RAW, chip_id=0xFF))
    with pytest.raises(SensorReadError) as caught:
        sensors.read_bme280(bus, bus_number=3)
    assert str(caught.value) == (
        "unexpected chip id 0xff at 0x76 on I2C bus 3: a BME280 reads 0x60 from register 0xd0"
    )


@pytest.mark.parametrize("code", [
    errno.EREMOTEIO, errno.EIO, errno.ENXIO, errno.ETIMEDOUT, errno.EBUSY,
])
def test_read_bme280_no_answer_suggests_the_other_address(code):
    bus = FakeSMBus(bme280_registers(PIMORONI_TRIMS, PIMORONI_RAW))
    bus.fail(code)
    with pytest.raises(SensorReadError) as caught:
        sensors.read_bme280(bus)
    assert str(caught.value) == (
        "no BME280 answered at 0x76 on I2C bus 1 — check wiring, or try --address 0x77"
    )


def test_read_bme280_nothing_at_0x77_suggests_0x76():
    bus = FakeSMBus(bme280_registers(PIMORONI_TRIMS, PIMORONI_RAW, address=0x76))
    with pytest.raises(SensorReadError) as caught:
        sensors.read_bme280(bus, address=0x77, bus_number=0)
    assert str(caught.value) == (
        "no BME280 answered at 0x77 on I2C bus 0 — check wiring, or try --address 0x76"
    )


def test_read_bme280_lost_during_the_measurement():
    bus = FakeSMBus(bme280_registers(PIMORONI_TRIMS, PIMORONI_RAW))
    bus.fail(errno.EREMOTEIO, registers={0xF7})  # answers the id and trims, then goes quiet
    with pytest.raises(SensorReadError, match=r"^no BME280 answered at 0x76 on I2C bus 1 "):
        sensors.read_bme280(bus)


def test_read_bme280_other_os_error_names_it():
    bus = FakeSMBus(bme280_registers(PIMORONI_TRIMS, PIMORONI_RAW))
    bus.fail(errno.EINVAL)
    with pytest.raises(SensorReadError) as caught:
        sensors.read_bme280(bus)
    assert str(caught.value) == "reading the BME280 at 0x76 on I2C bus 1 failed: [Errno 22] Invalid argument"


def test_read_bme280_rejects_the_no_measurement_block():
    no_measurement = (0x80, 0x00, 0x00, 0x80, 0x00, 0x00, 0x80, 0x00)
    bus = FakeSMBus(bme280_registers(PIMORONI_TRIMS, no_measurement))
    with pytest.raises(SensorReadError) as caught:
        sensors.read_bme280(bus)
    assert str(caught.value) == (
        "the BME280 at 0x76 on I2C bus 1 returned no measurement "
        "(data registers still hold their reset values 0x80 0x00 0x00)"
    )


def test_read_bme280_rejects_implausible_values_naming_them():
    zero_trims = {"T": (0, 0, 0), "P": (0,) * 9, "H": (0,) * 6}  # a bus that reads all zeros
    bus = FakeSMBus(bme280_registers(zero_trims, PIMORONI_RAW))
    with pytest.raises(SensorReadError) as caught:
        sensors.read_bme280(bus)
    assert str(caught.value) == (
        "implausible reading from the BME280 at 0x76 on I2C bus 1: "
        "temperature 0.0 °C, humidity 0.0 %, pressure 0.0 hPa"
    )


def test_read_bme280_without_the_library_says_to_install_requirements(monkeypatch):
    monkeypatch.setitem(sys.modules, "bme280", None)  # makes `import bme280` fail
    with pytest.raises(HardwareError) as caught:
        sensors.read_bme280(FakeSMBus(bme280_registers(PIMORONI_TRIMS, PIMORONI_RAW)))
    assert str(caught.value).startswith("RPi.bme280 could not be imported (")
    assert str(caught.value).endswith("): pip install -r requirements.txt")


def test_importing_sensors_loads_no_hardware_or_cloud_library():
    code = (
        "import sys, sensors; "
        "print(sorted(m for m in ('RPi', 'RPi.GPIO', 'smbus2', 'bme280', 'boto3', 'pandas', 'pyarrow')"
        " if m in sys.modules))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=os.path.dirname(sensors.__file__), check=True)
    assert result.stdout == "[]\n"


# --- simulated pin ------------------------------------------------------------------------


def test_simulated_outages_are_the_documented_schedule():
    assert sensors.SIMULATED_OUTAGES == (((23, 30), (0, 30)), ((6, 0), (8, 0)), ((14, 15), (15, 45)))
    for window in ("23:30 to 00:30", "06:00 to 08:00", "14:15 to 15:45"):
        assert window in " ".join(sensors.__doc__.split())


@pytest.mark.parametrize("hour, minute, expected", [
    (23, 29, 1), (23, 30, 0), (23, 45, 0), (0, 0, 0), (0, 29, 0), (0, 30, 1),
    (5, 59, 1), (6, 0, 0), (7, 59, 0), (8, 0, 1),
    (12, 0, 1),
    (14, 14, 1), (14, 15, 0), (15, 44, 0), (15, 45, 1),
])
def test_simulated_pin_follows_the_schedule(hour, minute, expected):
    at = dt.datetime(2025, 6, 21, hour, minute, tzinfo=UTC)
    assert sensors.simulated_pin_value(at) == expected


def test_simulated_pin_window_ends_at_the_end_minute_not_the_second():
    assert sensors.simulated_pin_value(dt.datetime(2025, 6, 21, 0, 29, 59, 999999, tzinfo=UTC)) == 0
    assert sensors.simulated_pin_value(dt.datetime(2025, 6, 21, 0, 30, 0, tzinfo=UTC)) == 1


def test_simulated_pin_reads_the_schedule_in_utc():
    berlin_summer = dt.timezone(dt.timedelta(hours=2))
    assert sensors.simulated_pin_value(dt.datetime(2025, 6, 22, 1, 45, tzinfo=berlin_summer)) == 0
    assert sensors.simulated_pin_value(dt.datetime(2025, 6, 21, 14, 0, tzinfo=berlin_summer)) == 1
    assert sensors.simulated_pin_value(dt.datetime(2025, 6, 21, 23, 45)) == 0  # naive is UTC


def test_simulated_pin_day_matches_the_documented_totals():
    midnight = dt.datetime(2025, 6, 21, tzinfo=UTC)
    day = [sensors.simulated_pin_value(midnight + dt.timedelta(minutes=m)) for m in range(-1, 1440)]
    previous, readings = day[0], day[1:]
    assert readings.count(0) == 270
    assert readings.count(1) == 1170
    outage_starts = [
        f"{m // 60:02d}:{m % 60:02d}"
        for m, (before, now) in enumerate(zip([previous] + readings, readings))
        if before == 1 and now == 0
    ]
    assert outage_starts == ["06:00", "14:15", "23:30"]
    longest = run = 0
    for value in readings:
        run = run + 1 if value == 0 else 0
        longest = max(longest, run)
    assert longest == 120


def test_simulated_pin_is_a_function_of_the_instant():
    at = dt.datetime(2025, 6, 21, 6, 30, tzinfo=UTC)
    assert [sensors.simulated_pin_value(at) for _ in range(3)] == [0, 0, 0]
    assert sensors.simulated_pin_value(at.astimezone(dt.timezone(dt.timedelta(hours=-5)))) == 0


# --- simulated environment ----------------------------------------------------------------


def minutes(start, count, step=1):
    return [start + dt.timedelta(minutes=step * i) for i in range(count)]


def test_simulated_environment_has_the_sensor_keys_and_rounding():
    values = sensors.simulated_environment(dt.datetime(2025, 6, 21, 12, 0, tzinfo=UTC))
    assert list(values) == ["temperature_c", "humidity_pct", "pressure_hpa"]
    assert all(isinstance(value, float) for value in values.values())
    assert values["temperature_c"] == round(values["temperature_c"], 2)
    assert values["humidity_pct"] == round(values["humidity_pct"], 1)
    assert values["pressure_hpa"] == round(values["pressure_hpa"], 2)


def test_simulated_environment_stays_in_indoor_ranges_over_days():
    # Every 7 minutes over 9 days covers every time of day and the multi-day pressure drift.
    for at in minutes(dt.datetime(2025, 1, 1, tzinfo=UTC), 9 * 1440 // 7, step=7):
        values = sensors.simulated_environment(at)
        assert 18.0 <= values["temperature_c"] <= 26.0, (at, values)
        assert 40.0 <= values["humidity_pct"] <= 70.0, (at, values)
        assert 1005.0 <= values["pressure_hpa"] <= 1020.0, (at, values)


def test_simulated_environment_varies_smoothly_with_a_daily_cycle():
    day = [sensors.simulated_environment(at)
           for at in minutes(dt.datetime(2025, 6, 21, tzinfo=UTC), 1440)]
    for key, biggest_step in (("temperature_c", 0.4), ("humidity_pct", 1.2), ("pressure_hpa", 0.3)):
        steps = [abs(later[key] - earlier[key]) for earlier, later in zip(day, day[1:])]
        assert max(steps) <= biggest_step, key
        assert len({reading[key] for reading in day}) > 100, key  # the jitter is there
    at_3, at_15 = day[3 * 60], day[15 * 60]
    assert at_15["temperature_c"] - at_3["temperature_c"] > 6.0
    assert at_3["humidity_pct"] - at_15["humidity_pct"] > 20.0


def test_simulated_environment_is_a_function_of_the_minute():
    at = dt.datetime(2025, 6, 21, 9, 41, 7, 250000, tzinfo=UTC)
    first = sensors.simulated_environment(at)
    assert sensors.simulated_environment(at) == first
    assert sensors.simulated_environment(at.replace(second=59)) == first
    assert sensors.simulated_environment(at.replace(tzinfo=None)) == first  # naive is UTC
    assert sensors.simulated_environment(at.astimezone(dt.timezone(dt.timedelta(hours=3)))) == first
    assert sensors.simulated_environment(at + dt.timedelta(minutes=1)) != first


def test_simulated_environment_is_the_same_in_another_process():
    # str hashes are salted per process; the jitter must not depend on them.
    code = ("import datetime as dt, sensors; "
            "print(sensors.simulated_environment(dt.datetime(2025, 6, 21, 9, 41, tzinfo=dt.timezone.utc)))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=os.path.dirname(sensors.__file__), check=True)
    here = sensors.simulated_environment(dt.datetime(2025, 6, 21, 9, 41, tzinfo=UTC))
    assert result.stdout == f"{here}\n"
