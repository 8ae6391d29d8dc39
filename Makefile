# Two commands for a fresh machine:
#   make run    build .venv from uv.lock, then run the pipeline (dvc repro)
#   make test   same setup, then the whole test suite (CI runs exactly this via .ci/run)

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
# uv itself: the one on PATH, else a private copy installed with pip into .uv-bootstrap/
UV := $(shell command -v uv 2>/dev/null)
ifeq ($(UV),)
UV := .uv-bootstrap/bin/uv
endif
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
PYTEST_ARGS ?=

.PHONY: setup run test clean help

help:
	@echo "make run    - create .venv from uv.lock and run the pipeline (dvc repro)"
	@echo "make test   - create .venv from uv.lock and run the test suite"

.uv-bootstrap/bin/uv:
	$(PYTHON) -m venv .uv-bootstrap
	.uv-bootstrap/bin/pip install --quiet --disable-pip-version-check uv

$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen
	@touch $@

setup: $(VENV)/.synced

run: setup
	dvc repro

test: setup
	pytest $(PYTEST_ARGS)

clean:
	rm -rf $(VENV) .uv-bootstrap .pytest_cache
