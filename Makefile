# The template's own commands. `make help` lists them.
.DEFAULT_GOAL := help
SHELL := /bin/bash
# The generated projects' .venv keep compiled modules, as on a user's machine: without them
# (PYTHONDONTWRITEBYTECODE, set in some images) every command compiles ZenML and MLflow, ~15 s.
unexport PYTHONDONTWRITEBYTECODE
UV := $(shell command -v uv 2>/dev/null || echo python3 -m uv)
DEMO_DIR := build/demo
# Test workers (pytest-xdist; a test module stays on one worker, its tests in order). Two suit
# a 2-core machine, which they keep busy: `make test` took 14 min (483 tests, 2026-12-06;
# about 1.7x as long on a machine 1.7x slower; three workers: slower, 1.5% idle).
# WORKERS=0 runs serially.
WORKERS ?= 2
RUNS ?= 3

.PHONY: help uv test test-fast lint demo bench bench-scale clean

help: ## List the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F ':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

uv: ## Make sure uv is available (installs it with pip if missing)
	@$(UV) --version >/dev/null 2>&1 || python3 -m pip install --quiet uv || \
		{ echo "Could not install uv: see https://docs.astral.sh/uv/getting-started/installation/"; exit 1; }

test: uv ## Install the test environment, lint, and run every template test
	$(UV) sync --locked
	$(UV) run ruff check .
	$(UV) run ruff format --check .
	$(UV) run pytest $(if $(filter-out 0,$(WORKERS)),-n $(WORKERS) --dist loadfile --no-loadscope-reorder) $(PYTEST_ARGS)

test-fast: uv ## Only the render and validator tests (seconds)
	$(UV) sync --locked
	$(UV) run pytest -m "not lifecycle"

lint: uv ## Lint the template's own Python code
	$(UV) run ruff check .
	$(UV) run ruff format --check .

demo: uv ## Render with defaults into build/demo, set it up, train, promote, deploy, predict
	$(UV) sync --locked
	rm -rf $(DEMO_DIR)
	$(UV) run copier copy --trust --defaults --vcs-ref HEAD -d project_name="Demo Project" . $(DEMO_DIR)
	$(MAKE) -C $(DEMO_DIR) setup all
	@echo
	@echo "Demo project: $(DEMO_DIR)"
	@echo "MLflow UI:    cd $(DEMO_DIR) && make mlflow-ui   (then open http://127.0.0.1:5000)"
	@echo "Stop serving: cd $(DEMO_DIR) && make undeploy"

bench: uv ## Time the generated project: lifecycle, serving, caching; then the scale tables
	$(UV) sync --locked
	$(UV) run python benchmarks/bench.py --runs $(RUNS) $(BENCH_ARGS)
	$(MAKE) bench-scale

# Batch inference against the plain-pandas floor (Spark: local[*] and a standalone cluster of
# two workers on 127.0.0.1, Java 17 needed), then training; 20M rows take ~15 GB of disk and
# the floor ~15 GB of memory: SCALE_ROWS=200000,2000000 for a quick look.
SCALE_ROWS ?= 200000,2000000,20000000
SCALE_ENGINES ?= pandas,spark-local,spark-cluster
TRAIN_ROWS ?= 500000 5000000
# The default answers (no large_data) read a batch whole: sizes that fit in memory.
DEFAULT_SCALE_ROWS ?= 200000,2000000
bench-scale: uv ## Only the scale tables: batch inference and training at millions of rows
	$(UV) sync --locked
	$(UV) run python benchmarks/scale.py --rows $(SCALE_ROWS) --engines $(SCALE_ENGINES)
	$(UV) run python benchmarks/scale.py --no-large-data --rows $(DEFAULT_SCALE_ROWS) --engines pandas
	rm -rf build/train-scale
	$(UV) run copier copy --trust --defaults --vcs-ref HEAD -d project_name="Train Scale" \
		-d large_data=true . build/train-scale
	$(MAKE) -C build/train-scale setup
	$(UV) run python benchmarks/train_scale.py build/train-scale --rows $(TRAIN_ROWS)

clean: ## Remove build/ and the test environment
	rm -rf build .venv .pytest_cache .ruff_cache
