# hier_repro: `make reproduce` (every table and figure), `make test` (CI), `make paper` (papers' settings, GPU).
# Every target installs what it needs into .venv first.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# torch wheels that lie on this machine's disk; override for your own machine, e.g.
#   make test TORCH="torch torchvision"
TORCH ?= torch==2.14.1 torchvision==0.29.1
NBDEV_WORKERS ?= 2
# extras installed with the package: [dev] (tests, nbdev, build) and [lab] (JupyterLab, ipywidgets: tests/test_lab.py runs a notebook in it)
EXTRAS ?= dev,lab
# worker processes of `make reproduce` (empty: one per core, each with one torch thread)
JOBS ?=
# idle OpenMP threads sleep instead of spinning (2-core machines shared with other jobs)
export OMP_WAIT_POLICY ?= PASSIVE

.PHONY: install sync clean-check docs-check test test-nbs test-py reproduce reproduce-e2e reproduce-all paper report clean

$(VENV)/.installed: settings.ini setup.py Makefile
	@test -x $(PY) || python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip wheel setuptools
	@$(PY) -c "import torch, torchvision" 2>/dev/null || $(PY) -m pip install -q $(TORCH)
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	@touch $@

install: $(VENV)/.installed

## sync: the exported modules must equal what nbdev_export makes of nbs/
sync: install
	@bash .ci/check_sync.sh $(VENV)

## clean-check: committed notebooks must be what nbdev_clean makes of them (names each one to clean)
clean-check: install
	@bash .ci/check_clean.sh $(VENV)

## docs-check: nbdev's doc processing (what nbdev_readme / nbdev_docs run before Quarto) runs every notebook
docs-check: install
	$(PY) tools/check_docs.py

test-nbs: sync
	$(VENV)/bin/nbdev_test --n_workers $(NBDEV_WORKERS) --do_print --timing

test-py: install
	$(PY) -m pytest tests -q -p no:cacheprovider

## test: sync, clean and docs checks, the notebooks' asserts (nbdev_test), then pytest (its summary line ends the output)
test: sync clean-check docs-check test-nbs test-py

## reproduce: recompute every record of the quick plan on the embedded default (CPU, no network, one process per core),
## execute the experiment notebooks on them, then figures/ and README
reproduce: install
	$(VENV)/bin/hier-repro reproduce --profile quick $(if $(JOBS),--jobs $(JOBS))

## reproduce-e2e: the end-to-end regime (a CNN trained from scratch on the embedded default, augmented, cosine schedule; CPU):
## the records of the e2e plans (100 runs), the notebooks on them, then figures/ and README (about 80 min on 2 cores)
reproduce-e2e: install
	$(VENV)/bin/hier-repro reproduce --profile e2e $(if $(JOBS),--jobs $(JOBS))

## reproduce-all: both CPU regimes, every committed table and figure
reproduce-all: reproduce reproduce-e2e

## paper: the papers' full settings (ResNet-50 / VGG-19 fine-tuned, 100 epochs): a GPU machine and the real datasets
paper: install
	$(VENV)/bin/hier-repro reproduce --profile paper --jobs $(or $(JOBS),1)

## report: figures/ and README from the records in results/ only
report: install
	$(VENV)/bin/hier-repro report && $(PY) tools/make_readme.py

clean:
	rm -rf $(VENV) runs .pytest_cache
