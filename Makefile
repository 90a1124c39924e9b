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

# The AWS Lambda deployment package of the watchdog and the status page (status_page.handler): its modules and the zone database (tzdata, so
# messages are in the user's zone whatever the runtime has); boto3 comes with the runtime.
LAMBDA_MODULES := watchdog.py watchdog_state.py dynamo.py channels.py messages.py utils.py filebuffer.py apprise_channel.py status_page.py aggregation.py
LAMBDA_ZIP := build/watchdog-lambda.zip

lambda: $(LAMBDA_ZIP)

$(LAMBDA_ZIP): $(LAMBDA_MODULES)
	rm -rf build/lambda && mkdir -p build/lambda
	cp $(LAMBDA_MODULES) build/lambda/
	cp -R "$$($(PYTHON) -c 'import os, tzdata; print(os.path.dirname(tzdata.__file__))')" build/lambda/tzdata
	find build/lambda -name __pycache__ -prune -exec rm -rf {} +
	rm -f $@ && cd build/lambda && $(PYTHON) -m zipfile -c ../$(notdir $@) $(LAMBDA_MODULES) tzdata
	@echo "built $@"

clean:
	rm -rf $(VENV) .pytest_cache build
