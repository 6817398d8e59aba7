# One command for the main job (`make demo`) and one for the tests (`make test`).
# Both create .venv and install recmeta into it; torch comes first as the CPU build
# (pip takes a local CPU wheel of torch 2.13.0 where the machine has one).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
DB ?= recmeta.db

.PHONY: setup demo test lint clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q torch==2.13.0 || $(BIN)/python -m pip install -q 'torch>=2.4'
	$(BIN)/python -m pip install -q -e '.[test]'
	touch $@

demo: setup
	rm -f $(DB) $(DB)-wal $(DB)-shm
	$(BIN)/recmeta --db $(DB) ingest items data/synth/items.csv
	$(BIN)/recmeta --db $(DB) ingest users data/synth/users.csv
	$(BIN)/recmeta --db $(DB) ingest interactions data/synth/interactions.csv
	$(BIN)/recmeta --db $(DB) stats
	$(BIN)/recmeta --db $(DB) train --max-time 60
	$(BIN)/recmeta --db $(DB) evaluate --seeds 0 --shots 0 --shots 1 --shots 5 --shots 10 --out reports/demo
	$(BIN)/recmeta --db $(DB) recommend --with 12:5 29:4 3:1 --explain -n 5

lint: setup
	$(BIN)/ruff check recmeta tests benchmarks cli.py migrations
	$(BIN)/lint-imports

test: lint
	$(BIN)/python -m pytest -q

clean:
	rm -rf $(VENV) *.egg-info .pytest_cache models reports
