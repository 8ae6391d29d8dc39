# Two commands for a fresh machine:
#   make run    build .venv from uv.lock, then run the pipeline (dvc repro)
#   make test   same setup, then make check and the whole test suite (CI runs exactly this via .ci/run)
#   make check  lint, format check and type check
#   make retrain  scheduled retraining (.github/workflows/retrain.yml): pull, retrain, evaluate, promote, push
#   make plots  the DVC plots as one page that works offline (dvc_plots/index.html)

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
# pytest-xdist workers, each test file (and tests/ops as a whole) on one of them: tests/conftest.py.
# Three on 2 cores: the tests wait on their subprocesses and servers often enough that a third
# worker fills the gaps (pytest on 2 cores: 440 s with 2 workers, 415 s with 3).
PYTEST_WORKERS ?= 3
PYTEST_ARGS ?=
RETRAIN_LOCK := .retrain.lock
LOCK_BUSY := 75
# What a failed retrain puts back as it was: dvc.lock and the outputs DVC does not cache (cache: false in
# dvc.yaml, tests/test_workflows.py checks the list); `dvc checkout` then restores the cached ones from dvc.lock.
RETRAIN_BACKUP := .retrain-backup
RETRAIN_KEEP := dvc.lock data/accepted.json metrics records plots

.PHONY: setup run test check retrain retrain-guarded retrain-steps retrain-restore plots vega-template clean help

help:
	@echo "make run    - create .venv from uv.lock and run the pipeline (dvc repro)"
	@echo "make test   - create .venv from uv.lock and run the test suite"
	@echo "make retrain - pull outputs (when a DVC remote is set), retrain the models, evaluate, promote, push"
	@echo "make plots  - write the DVC plots to dvc_plots/index.html (Vega inlined: opens offline)"

.uv-bootstrap/bin/uv:
	$(PYTHON) -m venv .uv-bootstrap
	.uv-bootstrap/bin/pip install --quiet --disable-pip-version-check uv

# --compile-bytecode: every stage is a fresh Python process; without .pyc files (PYTHONDONTWRITEBYTECODE,
# read-only site-packages) each one compiles TensorFlow and MLflow again, 15 s of CPU instead of 7.
$(VENV)/.synced: uv.lock pyproject.toml | $(UV)
	$(UV) sync --frozen --compile-bytecode --extra spark --extra postgres
	@touch $@

setup: $(VENV)/.synced

run: setup
	dvc repro

test: setup check
	pytest -n $(PYTEST_WORKERS) --dist loadfile $(PYTEST_ARGS)

# Lint, format check (ruff) and type check (mypy); configured in pyproject.toml. `ruff format .` fixes what the second one reports.
check: setup
	ruff check .
	ruff format --check .
	mypy

# One retrain at a time on this checkout: flock holds $(RETRAIN_LOCK) until the steps end (also on a crash).
retrain: setup
	@command -v flock >/dev/null || { echo "make retrain: needs flock (util-linux; macOS: brew install flock)" >&2; exit 1; }
	@flock --nonblock --conflict-exit-code $(LOCK_BUSY) $(RETRAIN_LOCK) $(MAKE) --no-print-directory retrain-guarded; \
	status=$$?; \
	if [ $$status -eq $(LOCK_BUSY) ]; then echo "make retrain: another retrain holds $(RETRAIN_LOCK); not starting a second one" >&2; fi; \
	exit $$status

# The steps, and on failure (e.g. new data that validate rejects) the workspace as it was before them:
# nothing of a failed retrain stays in dvc.lock, data/, models/, metrics/, records/ or plots/, and nothing is pushed.
retrain-guarded:
	@rm -rf $(RETRAIN_BACKUP) && mkdir -p $(RETRAIN_BACKUP) && \
	for path in $(RETRAIN_KEEP); do if [ -e "$$path" ]; then mkdir -p "$(RETRAIN_BACKUP)/$$(dirname $$path)" && cp -a "$$path" "$(RETRAIN_BACKUP)/$$path" || exit 1; fi; done
	@$(MAKE) --no-print-directory retrain-steps || { status=$$?; $(MAKE) --no-print-directory retrain-restore; exit $$status; }
	@rm -rf $(RETRAIN_BACKUP)

# A rejected batch's validation report is kept in reports/validation-rejected/ (the accepted one comes back).
# Once promote has written new decisions the champions have moved: the workspace then stays with them
# (records/promotion.json, not metrics/: its version numbers change whenever promote registers).
retrain-restore:
	@if [ -f records/promotion.json ] && ! cmp -s records/promotion.json "$(RETRAIN_BACKUP)/records/promotion.json"; then \
	  echo "make retrain: a step after promote failed; the champions moved, so the workspace keeps this retrain's outputs" >&2; \
	else \
	  echo "make retrain: a step failed; putting dvc.lock and the pipeline's outputs back as they were before it" >&2; \
	  if grep -qs '"success": false' reports/validation/summary.json; then \
	    rm -rf reports/validation-rejected && mv reports/validation reports/validation-rejected && \
	    echo "make retrain: the rejected data's validation report: reports/validation-rejected/index.html" >&2; \
	  fi; \
	  for path in $(RETRAIN_KEEP); do \
	    rm -rf "$$path"; if [ -e "$(RETRAIN_BACKUP)/$$path" ]; then cp -a "$(RETRAIN_BACKUP)/$$path" "$$path" || exit 1; fi; \
	  done; \
	  if [ -f dvc.lock ]; then dvc checkout --force --allow-missing || exit 1; \
	  else echo "make retrain: there was no dvc.lock before: nothing to check out" >&2; fi; \
	fi; \
	rm -rf $(RETRAIN_BACKUP)

# The DVC run-cache could restore the models of an earlier run without training (and without an MLflow
# run), so the training stages are forced; evaluate, promote and recommend follow because their inputs changed.
retrain-steps:
	@if dvc remote default >/dev/null 2>&1; then echo "dvc pull --allow-missing"; dvc pull --allow-missing; \
	else echo "no default DVC remote: nothing to pull"; fi
	dvc repro features
	dvc repro --force --single-item train_cofi train_content train_cofi_ranking train_content_ranking
	dvc repro
	@if dvc remote default >/dev/null 2>&1; then echo "dvc push"; dvc push; else echo "no default DVC remote: nothing to push"; fi

# .dvc/config points `dvc plots show` at plots/template/index.html, which carries Vega inline.
plots: setup
	dvc plots show

# After a DVC upgrade: re-vendor the Vega libraries its renderer asks for (needs npm).
vega-template: setup
	$(VENV)/bin/python plots/template/build.py

clean:
	rm -rf $(VENV) .uv-bootstrap .pytest_cache
