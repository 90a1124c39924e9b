# make test: run the tests.  make demo: the whole pipeline on this machine, no Pi, no AWS.
# make bench: cost and speed figures into BENCHMARKS.md.
# Both create .venv from the pinned requirements when it is missing or out of date.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: test demo bench venv clean

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

clean:
	rm -rf $(VENV) .pytest_cache
