# The two set-up commands of the README. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# hls.js for the HLS playback test (tests/browser/package-lock.json), installed when npm exists; the stamp keeps
# a second `make test` from reinstalling it. Without npm the test skips (and fails under CI=true).
NPM := $(shell command -v npm 2>/dev/null)
BROWSER_JS := tests/browser/node_modules/.installed

.PHONY: demo test lint bench clean

$(BIN)/videoconverter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/videoconverter
	$(BIN)/videoconverter demo

ifneq ($(NPM),)
test: $(BROWSER_JS)
endif

$(BROWSER_JS): tests/browser/package-lock.json tests/browser/package.json
	npm ci --prefix tests/browser --no-audit --no-fund
	touch $@

test: $(BIN)/videoconverter
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(BIN)/videoconverter
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) vc-demo vc-data .pytest_cache .mypy_cache .ruff_cache tests/browser/node_modules
