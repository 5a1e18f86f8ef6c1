# The two set-up commands of the README. Both create .venv and install into it: `make demo` the package and
# what it runs on (FFmpeg, PyAV) only; `make test` the development extras too (moto, the AWS CLI, Playwright,
# cfn-lint, linters). Each install has its own stamp, so either order works: `make test` after `make demo`
# adds the extras, and `make demo` after `make test` finds everything there.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
DEMO_INSTALLED := $(VENV)/.installed-demo
DEV_INSTALLED := $(VENV)/.installed-dev
# hls.js and dashjs for the playback tests (tests/browser/package-lock.json), installed when npm exists; the stamp keeps
# a second `make test` from reinstalling it. Without npm the test skips (and fails under CI=true).
NPM := $(shell command -v npm 2>/dev/null)
BROWSER_JS := tests/browser/node_modules/.installed

.PHONY: demo test lint bench clean

# An editable install leaves the package's own modules uncompiled; where PYTHONDONTWRITEBYTECODE is set (CI
# machines set it) every `videoconverter` process would compile them again, 0.1-0.2 s of CPU each, and a test
# suite starts hundreds. Compiling them ahead (only what changed since) is what a wheel's install does.
COMPILE = $(BIN)/python -m compileall -q src

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(DEMO_INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(DEV_INSTALLED): pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(DEMO_INSTALLED)
	$(COMPILE)
	$(BIN)/videoconverter demo

ifneq ($(NPM),)
test: $(BROWSER_JS)
endif

$(BROWSER_JS): tests/browser/package-lock.json tests/browser/package.json
	npm ci --prefix tests/browser --no-audit --no-fund
	touch $@

# The suite runs in TEST_WORKERS processes (pytest-xdist): most tests wait (on leases, servers, FFmpeg), so more
# processes than cores pay. Then the tests marked `exclusive` (they restart a shared server) run alone.
TEST_WORKERS ?= 4

test: $(DEV_INSTALLED)
	$(COMPILE)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest -n $(TEST_WORKERS) -m "not exclusive"
	$(BIN)/pytest -m exclusive

bench: $(DEV_INSTALLED)
	$(COMPILE)
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) vc-demo vc-data .pytest_cache .mypy_cache .ruff_cache tests/browser/node_modules
