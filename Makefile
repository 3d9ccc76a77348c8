# Statewright's entry points. `make run` and `make test` work on a fresh clone: the first
# run bootstraps uv into .tools/, the locked Python deps into .venv/ and the Node tools
# (CDK CLI, dynalite) into node_modules/.

PYTHON ?= python3
UV_VERSION := 0.13.9
TOOLS := .tools
UV := $(TOOLS)/bin/uv
VENV := .venv
BIN := $(VENV)/bin
PORT ?= 8080
ENV ?= dev

export UV_COMPILE_BYTECODE := 1
export UV_PYTHON_DOWNLOADS := never
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export PATH := $(CURDIR)/$(BIN):$(CURDIR)/node_modules/.bin:$(PATH)

.PHONY: install run test test-fast lint format synth diff deploy reliability bench clean openapi \
	chromium console-screenshot

$(UV):
	$(PYTHON) -m venv $(TOOLS)
	$(TOOLS)/bin/pip install --quiet --disable-pip-version-check uv==$(UV_VERSION)

$(VENV)/.installed: pyproject.toml uv.lock | $(UV)
	$(UV) sync --frozen
	@# uv compiles the dependencies' bytecode, not an editable package's: compile ours
	@# too, so the CLI and the handlers start from bytecode like everything they import.
	$(BIN)/python -m compileall -q layers/runtime/statewright functions
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-fund --no-audit --loglevel=error
	@touch $@

install: $(VENV)/.installed node_modules/.installed ## everything, dev tools included

run: $(VENV)/.installed ## serve the local control plane with the example specs
	$(BIN)/statewright serve --host 127.0.0.1 --port $(PORT) \
		--specs specs --specs examples/specs \
		--functions examples/functions --data-dir .statewright

chromium: ## Debian's chromium, which the console's browser tests drive (installs as root)
	@test -x /usr/bin/chromium || { apt-get update && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; }

console-screenshot: install ## docs/console.png, taken by the console's own browser test
	STATEWRIGHT_CONSOLE_SCREENSHOT=docs/console.png $(BIN)/pytest -q -p no:randomly -p no:xdist \
		tests/integration/console/test_console_serve.py -k launch_from_the_console

openapi: $(VENV)/.installed ## regenerate docs/openapi.json from the API's routes
	$(BIN)/python -m statewright.local.openapi docs/openapi.json

lint: install ## ruff, and mypy --strict on the package, infra/, functions/ and app.py
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

format: install
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: install lint ## the whole suite: lint, unit, integration, infra (short reliability runs)
	$(BIN)/pytest -n 2 --timeout 600 -q

test-fast: install ## in-process tests and the store contract, without slow runs or dynalite
	$(BIN)/pytest -n 2 -q -m "not slow and not dynalite" tests/unit tests/docs tests/contract

reliability: install ## the long reliability runs (minutes)
	STATEWRIGHT_RELIABILITY=long $(BIN)/pytest -q -p no:xdist tests/reliability

bench: install ## benchmarks -> bench/results.json and docs/benchmarks.md
	$(BIN)/python -m bench

synth: install ## CloudFormation for one environment into cdk.out/
	npx cdk synth -c env=$(ENV) --quiet

diff: install
	npx cdk diff -c env=$(ENV)

deploy: install
	npx cdk deploy -c env=$(ENV)

clean:
	rm -rf $(VENV) $(TOOLS) node_modules cdk.out .statewright .pytest_cache .mypy_cache .ruff_cache
