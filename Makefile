# Every target installs what it needs on first use; `make demo` and `make test` work on a fresh machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV := .venv
PY := $(VENV)/bin/python
CDK := node_modules/.bin/cdk
STAMP := $(VENV)/.installed

# jsii and the CDK CLI print end-of-life banners for Node.js 20 that bury real output.
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1
export NODE_NO_WARNINGS := 1
export CDK_DISABLE_VERSION_CHECK := 1

.PHONY: help install lock browser synth lint test test-unit test-infra test-e2e up demo chaos cost bench bootstrap deploy clean

help:
	@echo "make demo    - deploy the stack to the local cloud with the CDK CLI, run every async pattern, print a summary"
	@echo "make up      - the local cloud in the foreground (localcloud up): AWS endpoint :4566, local API :3000, dashboard :3001, the example deployed"
	@echo "make test    - lint, type-check and run every test"
	@echo "make chaos   - 10,000 order events with faults injected, then the invariants checked"
	@echo "make cost    - the monthly AWS bill at EVENTS_PER_MONTH (default 1000000) order events"
	@echo "make bench   - run the benchmarks, write bench/results.json"
	@echo "make lock    - recompile the locks with hashes (requirements/) after changing a pinned input"
	@echo "make synth   - synthesize the CloudFormation template into cdk.out (offline)"
	@echo "make deploy  - cdk deploy to the AWS account of your current credentials (run make bootstrap once first)"

# Every Python package comes from a lock with hashes (requirements/README.md); `make lock` recompiles them.
# Not --no-deps: pip then installs dependencies before their dependents, so where two packages write
# the same file (aws-cdk-lib and aws-cdk.cloud-assembly-schema) the dependent's copy wins, as always.
PIP_INSTALL = pip install --quiet --disable-pip-version-check
$(STAMP): pyproject.toml requirements/dev.lock
	python3 -m venv $(VENV)
	$(PY) -m $(PIP_INSTALL) --upgrade 'pip>=25.1'
	$(PY) -m $(PIP_INSTALL) --require-hashes --requirement requirements/dev.lock
	$(PY) -m $(PIP_INSTALL) --no-deps --editable .
	touch $@

# checkov pins its own boto3 and botocore: a venv of its own keeps them out of ours.
CHECKOV := .tools/checkov/bin/checkov
$(CHECKOV): requirements/checkov.lock
	rm -rf .tools/checkov
	python3 -m venv .tools/checkov
	.tools/checkov/bin/python -m $(PIP_INSTALL) --require-hashes --requirement requirements/checkov.lock
	touch $@

LOCK := $(VENV)/bin/uv pip compile --quiet --universal --python-version 3.11 --generate-hashes --custom-compile-command "make lock"
lock: $(STAMP)
	$(LOCK) --group dev --output-file requirements/dev.lock
	$(LOCK) requirements/checkov.txt --output-file requirements/checkov.lock
	$(LOCK) asyncstack/runtime/requirements.txt --output-file asyncstack/runtime/requirements.lock

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(STAMP) node_modules/.installed $(CHECKOV)

# The dashboard's browser tests drive Debian's Chromium with Playwright (never a browser of its own download).
CHROMIUM := /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)
$(CHROMIUM):
	$(SUDO) apt-get update -qq
	DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium >/dev/null

browser: $(CHROMIUM)

# The Lambda dependency layer is built during synthesis (CDK local bundling, pip; no Docker) and
# cached in .build/ under the hash of its requirements: no separate build step.
synth: install
	$(CDK) synth --quiet

lint: $(STAMP)
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy
	$(VENV)/bin/lint-imports --no-cache

test: install browser lint
	$(PY) -m pytest

test-unit: $(STAMP)
	$(PY) -m pytest -m unit

test-infra: install
	$(PY) -m pytest -m infra

test-e2e: install browser
	$(PY) -m pytest -m e2e

up: install
	$(PY) -m localcloud up

demo: install
	$(PY) -m demo run

chaos: install
	$(PY) -m demo chaos

EVENTS_PER_MONTH ?= 1000000
cost: synth
	$(PY) -m bench.cost --events-per-month $(EVENTS_PER_MONTH)

bench: install
	$(PY) -m bench

bootstrap: install
	$(CDK) bootstrap

deploy: install
	$(CDK) deploy --require-approval broadening $(CDK_ARGS)

clean:
	rm -rf cdk.out .build .pytest_cache .mypy_cache .ruff_cache test-output
