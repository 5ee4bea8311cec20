# qc — the two commands a fresh machine needs: `make run` and `make test`.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint venv samples bench bench-accuracy clean

# Create or refresh the virtual environment whenever pyproject.toml changes.
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# The main job on embedded defaults: the plant service on SQLite with a demo.
run: $(STAMP)
	$(BIN)/qc demo

lint: $(STAMP)
	$(BIN)/ruff check .

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/python -m pytest -q

samples: $(STAMP)
	$(BIN)/python -m training.synth sample_images

bench: $(STAMP)
	$(BIN)/python -m bench.train_time
	$(BIN)/python -m bench.inference_latency
	$(BIN)/python -m bench.anomaly
	$(BIN)/python -m bench.ingest
	$(BIN)/python -m bench.stats_latency
	$(BIN)/python -m bench.report_latency
	$(BIN)/python -m bench.edge_latency
	$(BIN)/python -m bench.hostile_images
	$(BIN)/python -m bench.training_jobs

# Train the defaults on every real data set and inspect the held-out parts (docs/benchmarks.md).
bench-accuracy: $(STAMP)
	$(BIN)/python -m bench.accuracy

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .ruff_cache
