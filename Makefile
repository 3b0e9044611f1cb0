# Hookstream: `make help` lists the targets.
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
KAFKA := $(PY) deploy/kafka/local_kafka.py
KAFKA_PORT ?= 9092
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=
UP_ARGS ?=
RUN_AUTOMATIONS ?= deploy/examples/automations.yaml
BENCH_ARGS ?=
BENCH_KAFKA_PORT ?= 19492

.PHONY: help install test-tools kafka-up kafka-down kafka-status run test test-unit test-integration test-faults lint schemas bench clean

help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-16s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11+ is required")'
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install Hookstream with the dev extra

# What the tests run but do not install (issue 13: tests never install system packages):
# promtool and prometheus from Debian's `prometheus` package (the deployment tests check the
# rules and scrape a worker with them), Debian's `chromium` (the console's browser test
# drives it with Playwright; never a browser Playwright downloads), and the Kafka jars from
# Maven Central (the brokers the tests start themselves). Present ones are kept. When one
# cannot be had, CI (CI=true) stops here; elsewhere a warning, and the tests that need it
# skip, naming it.
PROMETHEUS_TOOLS := promtool prometheus
test-tools: install ## Install what the tests need when missing: Debian's prometheus and chromium packages (apt-get), the Kafka jars (mvn)
	@fail() { echo "test-tools: $$1" >&2; case "$${CI,,}" in 1|true|yes) exit 1;; esac; \
		echo "test-tools: continuing outside CI; the tests that need it skip" >&2; }; \
	missing=""; packages=""; for tool in $(PROMETHEUS_TOOLS); do command -v $$tool >/dev/null || missing="$$missing $$tool"; done; \
	[ -z "$$missing" ] || packages="prometheus"; \
	command -v chromium >/dev/null || { missing="$$missing chromium"; packages="$$packages chromium"; }; \
	if [ -n "$$missing" ]; then \
		if [ "$$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else sudo="none"; fi; \
		if ! command -v apt-get >/dev/null; then fail "missing$$missing and no apt-get: install Debian's$$packages package(s)"; \
		elif [ "$$sudo" = none ]; then fail "missing$$missing: Debian's$$packages package(s) need root (or sudo) to install"; \
		else echo "installing Debian's$$packages (missing:$$missing)"; \
			$$sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq && \
			$$sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $$packages \
			|| fail "apt-get install$$packages failed"; fi; \
	fi; \
	if command -v mvn >/dev/null; then $(KAFKA) jars >/dev/null || fail "resolving the Kafka jars failed"; \
	else fail "mvn not found: the Kafka jars of the tests' own brokers cannot be resolved"; fi

kafka-up: install ## Start the local Kafka broker (no-op when running or when KAFKA_BOOTSTRAP_SERVERS is set)
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ]; then echo "using KAFKA_BOOTSTRAP_SERVERS=$$KAFKA_BOOTSTRAP_SERVERS"; \
	else $(KAFKA) up --port $(KAFKA_PORT); fi

kafka-down: install ## Stop the local Kafka broker
	$(KAFKA) down --port $(KAFKA_PORT)

kafka-status: install ## Tell whether the local broker answers
	$(KAFKA) status --port $(KAFKA_PORT)

# `hookstream up` supervises the worker, both dispatchers and a local receiver; the
# examples deliver to that receiver on loopback, which only this development setting allows.
run: kafka-up ## Install, start a broker unless configured, then `hookstream up`: worker, dispatchers, local receiver, example automations
	@export KAFKA_BOOTSTRAP_SERVERS=$${KAFKA_BOOTSTRAP_SERVERS:-127.0.0.1:$(KAFKA_PORT)}; \
	export HOOKSTREAM_DISPATCH__ALLOW_LOOPBACK=$${HOOKSTREAM_DISPATCH__ALLOW_LOOPBACK:-true}; \
	exec $(VENV)/bin/hookstream up --automations $(RUN_AUTOMATIONS) $(UP_ARGS)

test: install test-tools ## Install (test tools too), start a broker (unless configured), run the whole suite, stop only that broker
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ]; then $(PY) -m pytest $(PYTEST_ARGS); \
	else $(KAFKA) run --port $(KAFKA_PORT) -- $(PY) -m pytest $(PYTEST_ARGS); fi

FAULT_TESTS := tests/faults tests/unit/test_hostile_events.py tests/unit/test_hostile_automations.py tests/unit/test_poison_records.py

test-faults: install test-tools ## Fault suite only (crash, broker restart, rebalance, hostile input, secrets); figures in build/faults-report.md
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ]; then $(PY) -m pytest -m faults $(FAULT_TESTS) $(PYTEST_ARGS); \
	else $(KAFKA) run --port $(KAFKA_PORT) -- $(PY) -m pytest -m faults $(FAULT_TESTS) $(PYTEST_ARGS); fi
	@cat build/faults-report.md 2>/dev/null || true

# The benchmark starts a broker of its own (unless KAFKA_BOOTSTRAP_SERVERS is set): the
# test broker carries every test run's topics and other suites' traffic, which made
# figures swing by half from one run to the next.
bench: install ## Benchmarks on their own local broker (port BENCH_KAFKA_PORT): table + docs/benchmarks.md; BENCH_ARGS=--smoke
	@if [ -n "$$KAFKA_BOOTSTRAP_SERVERS" ]; then $(PY) -m bench.run $(BENCH_ARGS); \
	else $(KAFKA) run --port $(BENCH_KAFKA_PORT) -- $(PY) -m bench.run $(BENCH_ARGS); fi

test-unit: install ## Unit tests only (no broker)
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

lint: install ## ruff check and format check, strict mypy (app, tests, bench, deploy), the import-layer contracts; any finding fails
	$(VENV)/bin/ruff check app tests deploy bench
	$(VENV)/bin/ruff format --check app tests deploy bench
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

schemas: install ## Regenerate schemas/ and docs/openapi.json from the models
	$(VENV)/bin/hookstream schemas export
	$(VENV)/bin/hookstream openapi export

clean: ## Remove the venv, caches and local state (the Kafka jar cache stays)
	-$(KAFKA) down --port $(KAFKA_PORT) 2>/dev/null
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .hookstream-data *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
