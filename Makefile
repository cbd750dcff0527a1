# The two commands a user needs: `make demo` and `make test`.
VENV ?= .venv
BIN := $(VENV)/bin
WORK ?= work
SIZE ?= small
CORPUS := $(WORK)/corpus-$(SIZE)
RECIPE ?= recipes/synth-$(SIZE).yaml
RUN := $(WORK)/runs/synth-$(SIZE)

.PHONY: setup demo test test-fast lint bench clean

setup:
	bash scripts/setup.sh

## demo: set up, synthesise and check the small corpus, train one model on every task, add an n-gram LM for
## its CTC search, evaluate it on the test split and answer a few test files through the same inference path
## as the service.
demo: setup
	@if [ -f $(CORPUS)/corpus.json ] && [ -f $(CORPUS)/manifests/texts_train.jsonl.gz ]; then \
	echo "[demo] reusing $(CORPUS) (make clean to rebuild)"; \
	elif [ -f $(CORPUS)/corpus.json ]; then echo "[demo] $(CORPUS) has no text-only rows (older mtspeech): synthesising it again"; \
	$(BIN)/mtspeech corpus synth --size $(SIZE) --out $(CORPUS) --overwrite; \
	else $(BIN)/mtspeech corpus synth --size $(SIZE) --out $(CORPUS); fi
	$(BIN)/mtspeech data validate $(CORPUS)
	$(BIN)/mtspeech corpus summary $(CORPUS)
	@if [ -f $(RUN)/model.pt ]; then echo "[demo] reusing $(RUN)/model.pt (make clean to retrain)"; \
	else $(BIN)/mtspeech train $(RECIPE) $$( ls $(RUN)/checkpoints/step-*.pt >/dev/null 2>&1 && echo --resume ); fi
	@if $(BIN)/python -c "import sys, mtspeech; sys.exit(mtspeech.load('$(RUN)/model.pt').lm is None)"; then \
	echo "[demo] $(RUN)/model.pt has its n-gram LM"; \
	else $(BIN)/mtspeech lm --model $(RUN)/model.pt --data $(CORPUS); fi
	$(BIN)/mtspeech evaluate --model $(RUN)/model.pt --data $(CORPUS) --split test --out $(RUN)/eval
	$(BIN)/mtspeech analyze --model $(RUN)/model.pt $$(ls $(CORPUS)/audio/test/*.flac | head -3)
	@echo "[demo] serve it: $(BIN)/mtspeech serve --model $(RUN)/model.pt  (then open http://127.0.0.1:8000/)"

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
