# Quorum: `make demo` runs the whole product on this machine, `make test` checks it (README.md),
# `make test-fast` checks all but the end-to-end suites.
#
# Both create .venv when it is missing and (re)install into it only when pyproject.toml is newer
# than the last install, which a stamp file in .venv records.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
VAR := var
TEST_POSTGRES := postgres://postgres@127.0.0.1:5432/test
LOCAL_TEST_REDIS := redis://127.0.0.1:6379/15
PYTEST_ARGS ?=

.PHONY: demo test test-fast lint install venv chromium clean

demo: $(VENV)/.installed-demo
	$(PY) -m quorum.demo

venv: $(PY)

install: $(VENV)/.installed-test

$(PY):
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null || { \
	  echo "Quorum needs Python 3.11 or newer, and '$(PYTHON)' is" \
	       "$$($(PYTHON) --version 2>&1 || echo 'not installed')."; \
	  echo "Install one (Debian/Ubuntu: apt-get install python3.11 python3.11-venv)" \
	       "and run: make PYTHON=python3.11 $(or $(MAKECMDGOALS),demo)"; \
	  exit 1; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# The MLflow guard is its own distribution (mlflow-quorum-guard/): the demo and the tests run
# `mlflow server --app-name quorum-guard` from this venv, so both install it beside Quorum.
GUARD := ./mlflow-quorum-guard[basic-auth]

$(VENV)/.installed-demo: pyproject.toml mlflow-quorum-guard/pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[demo]' -e '$(GUARD)'
	@touch $@

$(VENV)/.installed-test: pyproject.toml mlflow-quorum-guard/pyproject.toml | $(PY)
	$(PY) -m pip install -e '.[test,demo]' -e '$(GUARD)'
	@touch $@

# The browser tests drive Debian's Chromium: Playwright cannot download its own browser here.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium for the browser tests"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else \
	    echo "The browser tests need Chromium at /usr/bin/chromium, and it is missing."; \
	    echo "Install Debian's package as root: apt-get install -y chromium" \
	         "(or: sudo apt-get install -y chromium), then run make test again."; \
	    exit 1; \
	  fi; \
	fi

# Database: DATABASE_URL, else the local PostgreSQL when it answers, else SQLite (with a notice).
# Redis: TEST_REDIS_URL, else database 15 of the local Redis, else a private redis-server under
# var/ for the length of the run. Never REDIS_URL: that may be someone's data.
# $(1): pytest's arguments before PYTEST_ARGS; $(2): what a run that selects no test is called.
define run-pytest
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	@if [ -n "$${DATABASE_URL:-}" ]; then \
	  echo "database: DATABASE_URL"; \
	elif $(PY) -m quorum.localservices answers $(TEST_POSTGRES); then \
	  export DATABASE_URL=$(TEST_POSTGRES); echo "database: PostgreSQL at $(TEST_POSTGRES)"; \
	else \
	  echo "notice: no PostgreSQL answers at $(TEST_POSTGRES); the tests run on SQLite" \
	       "(set DATABASE_URL to test against another database)"; \
	fi; \
	wrap=""; \
	if [ -n "$${TEST_REDIS_URL:-}" ]; then \
	  export REDIS_URL="$$TEST_REDIS_URL"; echo "redis: TEST_REDIS_URL"; \
	elif $(PY) -m quorum.localservices answers $(LOCAL_TEST_REDIS); then \
	  export REDIS_URL=$(LOCAL_TEST_REDIS); echo "redis: $(LOCAL_TEST_REDIS)"; \
	else \
	  wrap="$(PY) -m quorum.localservices with-redis --var $(VAR) --"; \
	fi; \
	status=0; $$wrap $(PY) -m pytest $(1) $(PYTEST_ARGS) || status=$$?; \
	if [ $$status -eq 5 ]; then \
	  echo "make $@: pytest selected no tests$(2), which counts as a failure"; exit 1; \
	fi; \
	exit $$status
endef

# Everything: the unit and view tests and the end-to-end suites (demo, deploy, reliability, browser).
test: $(VENV)/.installed-test chromium
	$(call run-pytest,,)

# The everyday loop: everything but the tests marked e2e (pyproject.toml), so no browser is needed.
test-fast: $(VENV)/.installed-test
	$(call run-pytest,-m "not e2e", outside the e2e suites)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff format --check .

# Back to a fresh clone: the virtualenv, caches, and var/ (the demo's database and MLflow store).
clean:
	rm -rf $(VENV) $(VAR) .pytest_cache .ruff_cache .mypy_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
