# make test: run the tests.  make demo: the whole pipeline on this machine, no Pi, no AWS.
# make bench: cost and speed figures into BENCHMARKS.md.  make lambda: the watchdog's Lambda package.
# Both create .venv from the pinned requirements when it is missing or out of date.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench venv clean lambda

venv: $(STAMP)

$(STAMP): requirements.txt requirements_dev.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements_dev.txt
	touch $(STAMP)

test: $(STAMP)
	$(PY) -m pytest

demo: $(STAMP)
	$(PY) demo.py

# Benchmarks against a local moto server; writes BENCHMARKS.md (several minutes; not part of test).
bench: $(STAMP)
	$(PY) bench/run.py

# The AWS Lambda deployment package of the watchdog, the status page (status_page.handler) and the
# Telegram bot (telegram_bot.handler; its pictures fall back to text: no matplotlib in it): its
# modules, the zone database (tzdata, so messages are in the user's zone whatever the runtime
# has), Apprise and the iCalendar parsers (schedule.py, pure Python) with what they need, at
# the versions pinned in requirements.txt, as wheels for the function's runtime (Python 3.12,
# arm64); boto3 comes with the runtime. Built with the venv's Python (a fresh clone makes it).
LAMBDA_MODULES := watchdog.py watchdog_state.py untrusted.py dynamo.py channels.py messages.py utils.py filebuffer.py apprise_channel.py status_page.py aggregation.py schedule.py telegram_bot.py
LAMBDA_ZIP := build/watchdog-lambda.zip
LAMBDA_PLATFORM := --platform manylinux2014_aarch64 --python-version 3.12 --implementation cp --only-binary=:all:

lambda: $(LAMBDA_ZIP)

$(LAMBDA_ZIP): $(LAMBDA_MODULES) requirements.txt | $(STAMP)
	rm -rf build/lambda && mkdir -p build/lambda
	cp $(LAMBDA_MODULES) build/lambda/
	grep -E '^(tzdata|apprise|icalendar|recurring-ical-events|x-wr-timezone)==' requirements.txt > build/lambda-requirements.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-compile --target build/lambda $(LAMBDA_PLATFORM) \
		-r build/lambda-requirements.txt
	find build/lambda -name __pycache__ -prune -exec rm -rf {} +
	rm -f $@ && cd build/lambda && $(abspath $(PY)) -m zipfile -c ../$(notdir $@) .
	@$(PY) -c 'import os, sys; print(f"built {sys.argv[1]}: {os.path.getsize(sys.argv[1]) / 2**20:.1f} MiB")' $@

clean:
	rm -rf $(VENV) .pytest_cache build
