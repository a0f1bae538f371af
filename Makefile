# Two entry points for a fresh machine (Python 3.11+ and Java 17+ are the prerequisites):
#   make demo   install into .venv, start local Kafka + Elasticsearch, ingest the samples, show the result
#   make test   install into .venv with test extras, lint, run the whole test suite (starts its own services)
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint unit install clean services-down bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed: setup.py $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

install: $(VENV)/.installed

demo: install
	$(BIN)/khabar demo

lint: install
	$(BIN)/ruff check .

test: lint
	$(BIN)/python -m pytest

unit: install
	$(BIN)/python -m pytest tests/unit tests/pipeline

services-down: install
	$(BIN)/khabar services down

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache

bench: install
	$(BIN)/python -m benchmarks
