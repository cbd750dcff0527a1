# The two commands a user needs: `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
WORK ?= work
SIZE ?= small
CORPUS := $(WORK)/corpus-$(SIZE)

.PHONY: setup demo test test-fast lint bench clean

setup:
	bash scripts/setup.sh

## demo: set up, synthesise the small corpus, validate it, print its summary and draw its plots.
demo: setup
	$(BIN)/mtspeech corpus synth --size $(SIZE) --out $(CORPUS)
	$(BIN)/mtspeech data validate $(CORPUS)
	$(BIN)/mtspeech corpus summary $(CORPUS)

## test: the whole suite, slow end-to-end tests included (what CI runs).
test: setup
	$(BIN)/ruff check mtspeech tests bench
	$(BIN)/python -m pytest -n 2 tests

## test-fast: skip the slow end-to-end tests while developing.
test-fast: setup
	$(BIN)/python -m pytest -n 2 -m "not slow" tests

lint: setup
	$(BIN)/ruff check mtspeech tests bench
	$(BIN)/ruff format --check mtspeech tests bench

bench: setup
	$(BIN)/python bench/data.py

clean:
	rm -rf $(WORK) .pytest_cache
