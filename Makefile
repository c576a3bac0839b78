# setae: `make demo` trains and evaluates the default model on MNIST; `make test` runs the test suite.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
TORCH_VERSION := 2.13.0

# Tests and the demo read MNIST from ../shared/data/mnist when it is there and SETAE_DATA is unset.
SHARED_MNIST := $(abspath ../shared/data/mnist)
ifeq ($(SETAE_DATA),)
  ifneq ($(wildcard $(SHARED_MNIST)/train-images-idx3-ubyte.gz),)
    export SETAE_DATA := $(SHARED_MNIST)
  endif
endif

.PHONY: demo test bench lint install clean

$(STAMP): pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	# The pinned CPU build first, so nothing pulls a multi-GB CUDA build of torch.
	$(PY) -m pip install --quiet torch==$(TORCH_VERSION)
	$(PY) -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/setae demo --run-dir runs/demo

test: $(STAMP)
	$(PY) -m pytest

# About 15 minutes on 2 idle CPU cores; figures go to benchmarks/results/ (targets.md sums them up).
bench: $(STAMP)
	$(PY) benchmarks/train_throughput.py
	$(PY) benchmarks/matching.py
	$(PY) benchmarks/scaling.py
	$(PY) benchmarks/chamfer.py
	$(PY) benchmarks/targets.py

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

clean:
	rm -rf runs .pytest_cache .ruff_cache .hypothesis
