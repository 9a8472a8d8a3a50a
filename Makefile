# One target per habit. Every target installs what it needs into .venv first.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test lint format typecheck unit openapi bench package deploy clean sandbox

$(STAMP): requirements.txt requirements-dev.txt
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade "pip<26.3"
	$(PY) -m pip install --quiet -r requirements-dev.txt
	@touch $(STAMP)

## run: the whole service locally (AWS emulator, API on :8000, queue poller, APNs sandbox)
run: $(STAMP)
	$(PY) -m devstack

## test: lint + types + the whole suite (unit, integration against the emulator, end-to-end)
test: lint
	$(PY) -m pytest -q

## lint: ruff (lint + format check) and mypy on the service
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

unit: $(STAMP)
	$(PY) -m pytest -q tests/unit

## openapi: regenerate openapi.json from the route declarations and models
openapi: $(STAMP)
	$(PY) tools/gen_openapi.py

## sandbox: the APNs sandbox alone
sandbox: $(STAMP)
	$(PY) -m apns_sandbox

clean:
	rm -rf $(VENV) .local .pytest_cache .mypy_cache .ruff_cache

## bench: the send pipeline against raw aioapns on the local stack (BENCH_N=20000)
bench: $(STAMP)
	$(PY) -m bench.send_pipeline
