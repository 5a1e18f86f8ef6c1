# The two set-up commands of the README. Both create .venv and install into it.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint bench clean

$(BIN)/videoconverter: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

demo: $(BIN)/videoconverter
	$(BIN)/videoconverter demo

test: $(BIN)/videoconverter
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy
	$(BIN)/pytest

bench: $(BIN)/videoconverter
	$(BIN)/python bench/overhead.py

clean:
	rm -rf $(VENV) vc-demo vc-data .pytest_cache .mypy_cache .ruff_cache
