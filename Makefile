# Quorum: `make demo` runs the whole product on this machine, `make test` checks it (README.md),
# `make test-fast` checks all but the end-to-end suites and the tests that use real servers.
#
# What they install comes from the locks in requirements/ (every package pinned, with hashes),
# never from whatever is newest that day: `make lock` re-resolves them after a change to
# pyproject.toml, `make upgrade` takes the newest releases the ranges allow, and `make
# test-latest` runs the suite on those newest releases in a venv of its own (.venv-latest)
# without touching the locks. A stamp file in the venv records the last install, so an
# unchanged lock installs nothing.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
UV := $(VENV)/bin/uv
VAR := var
TEST_POSTGRES := postgres://postgres@127.0.0.1:5432/test
LOCAL_TEST_REDIS := redis://127.0.0.1:6379/15
PYTEST_ARGS ?=
# pytest-xdist processes: most of the suite waits on MLflow, workers and a browser rather than
# computing, so more processes than cores pays (docs/testing.md has the figures).
TEST_WORKERS ?= 4
LOCKS := requirements/test.in requirements/test.txt requirements/demo.in requirements/demo.txt
COMPILE = $(UV) pip compile --quiet --universal --python-version 3.11 --generate-hashes \
	--no-emit-package quorum --no-emit-package mlflow-quorum-guard
PROJECTS := pyproject.toml mlflow-quorum-guard/pyproject.toml

.PHONY: demo test test-fast test-latest lint lock lockcheck upgrade install venv chromium clean

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

# The installer (uv) comes from a lock of its own, installed by the venv's pip.
$(UV): requirements/bootstrap.txt | $(PY)
	$(PY) -m pip install --quiet --require-hashes --no-deps -r requirements/bootstrap.txt
	@touch $@

# The MLflow guard is its own distribution (mlflow-quorum-guard/): the demo and the tests run
# `mlflow server --app-name quorum-guard` from this venv, so both install it beside Quorum.
# $(1): the lock. The two projects go in editable and without build isolation, so that their
# build backend is the locked setuptools too. --compile-bytecode writes every package's .pyc at
# install time: where PYTHONDONTWRITEBYTECODE is set, Python never writes them itself, and every
# process would compile what it imports from source again (importing MLflow: 5.7 s of CPU
# instead of 2.2 s, docs/testing.md).
define install-locked
	$(UV) pip install --python $(PY) --require-hashes --compile-bytecode -r $(1)
	$(UV) pip install --python $(PY) --no-deps --no-build-isolation \
	  -e . -e ./mlflow-quorum-guard
endef

$(VENV)/.installed-demo: requirements/demo.txt $(PROJECTS) | $(UV)
	$(call install-locked,requirements/demo.txt)
	@touch $@

$(VENV)/.installed-test: requirements/test.txt $(PROJECTS) | $(UV)
	$(call install-locked,requirements/test.txt)
	@touch $@

# A lock that no longer admits what pyproject.toml asks for is refused before anything runs.
lockcheck: $(VENV)/.installed-test
	@$(PY) requirements/lockcheck.py $(LOCKS)

# Re-resolve after a change to pyproject.toml, keeping every pin that still fits.
lock: | $(UV)
	$(COMPILE) requirements/test.in -o requirements/test.txt
	$(COMPILE) requirements/demo.in -c requirements/test.txt -o requirements/demo.txt
	$(COMPILE) requirements/bootstrap.in -o requirements/bootstrap.txt
	@echo "Locked. Run make test, then commit requirements/*.txt."

# The newest releases the ranges allow, into the locks: then make test, and commit if green.
upgrade: | $(UV)
	$(COMPILE) --upgrade requirements/test.in -o requirements/test.txt
	$(COMPILE) --upgrade requirements/demo.in -c requirements/test.txt -o requirements/demo.txt
	$(COMPILE) --upgrade requirements/bootstrap.in -o requirements/bootstrap.txt
	@echo "Upgraded. Run make test, then commit requirements/*.txt."

# The browser tests drive Debian's Chromium (its headless shell, `chromium-headless-shell`: the
# same build without the desktop shell, about half the CPU per page): Playwright cannot download
# its own browser here. QUORUM_TEST_CHROMIUM names another binary and skips this.
chromium:
	@if [ -z "$$QUORUM_TEST_CHROMIUM" ] && [ ! -x /usr/bin/chromium-headless-shell ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    echo "installing Debian's chromium-headless-shell for the browser tests"; \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium-headless-shell; \
	  else \
	    echo "The browser tests need Chromium's headless shell at /usr/bin/chromium-headless-shell," \
	         "and it is missing."; \
	    echo "Install Debian's package as root: apt-get install -y chromium-headless-shell" \
	         "(or: sudo apt-get install -y chromium-headless-shell), then run make test again."; \
	    exit 1; \
	  fi; \
	fi

# Database: DATABASE_URL, else the local PostgreSQL when it answers, else SQLite (with a notice).
# Redis: TEST_REDIS_URL, else database 15 of the local Redis, else a private redis-server under
# var/ for the length of the run. Never REDIS_URL: that may be someone's data.
# $(1): pytest's arguments before PYTEST_ARGS; $(2): what a run that selects no test is called.
# $(TV) is the venv to test with: .venv, or .venv-latest for `make test-latest`.
TV = $(VENV)
#
# mypy runs beside pytest (its result is reported, and counts, when pytest ends): the suite
# mostly waits on servers and processes, so the type check costs no time there.
#
# PYTHONDONTWRITEBYTECODE is cleared for the run: the suite starts a few hundred Python
# processes (servers, workers, commands), and with it set each one compiles Quorum's modules
# from source and pytest rewrites every test module again in each of its processes. The .pyc
# files go to __pycache__/ directories, which git ignores.
define run-pytest
	$(TV)/bin/ruff check .
	$(TV)/bin/ruff format --check .
	$(TV)/bin/lint-imports
	@export PYTHONDONTWRITEBYTECODE=; \
	mkdir -p $(VAR); $(TV)/bin/mypy > $(VAR)/mypy.log 2>&1 & mypy=$$!; \
	if [ -n "$${DATABASE_URL:-}" ]; then \
	  echo "database: DATABASE_URL"; \
	elif $(TV)/bin/python -m quorum.localservices answers $(TEST_POSTGRES); then \
	  export DATABASE_URL=$(TEST_POSTGRES); echo "database: PostgreSQL at $(TEST_POSTGRES)"; \
	else \
	  echo "notice: no PostgreSQL answers at $(TEST_POSTGRES); the tests run on SQLite" \
	       "(set DATABASE_URL to test against another database)"; \
	fi; \
	wrap=""; \
	if [ -n "$${TEST_REDIS_URL:-}" ]; then \
	  export REDIS_URL="$$TEST_REDIS_URL"; echo "redis: TEST_REDIS_URL"; \
	elif $(TV)/bin/python -m quorum.localservices answers $(LOCAL_TEST_REDIS); then \
	  export REDIS_URL=$(LOCAL_TEST_REDIS); echo "redis: $(LOCAL_TEST_REDIS)"; \
	else \
	  wrap="$(TV)/bin/python -m quorum.localservices with-redis --var $(VAR) --"; \
	fi; \
	status=0; $$wrap $(TV)/bin/python -m pytest -n $(TEST_WORKERS) --dist worksteal $(1) $(PYTEST_ARGS) \
	  || status=$$?; \
	typed=0; wait $$mypy || typed=$$?; \
	echo "mypy:"; cat $(VAR)/mypy.log; \
	if [ $$status -eq 5 ]; then \
	  echo "make $@: pytest selected no tests$(2), which counts as a failure"; exit 1; \
	fi; \
	if [ $$status -eq 0 ] && [ $$typed -ne 0 ]; then \
	  echo "make $@: the tests passed but mypy found type errors (above)"; exit $$typed; \
	fi; \
	exit $$status
endef

# Everything: the unit and view tests and the end-to-end suites (demo, deploy, reliability, browser).
test: lockcheck chromium
	$(call run-pytest,,)

# The everyday loop: everything but the tests marked e2e or servers (pyproject.toml): no browser,
# no MLflow server, no worker process. PYTEST_ARGS='-m servers' runs those instead.
test-fast: lockcheck
	$(call run-pytest,-m "not e2e and not servers", outside the e2e and servers tests)

# Drift found on purpose: the newest releases that pyproject.toml's ranges allow, in a venv of
# their own, and the whole suite on them. Not part of `make test` or CI; the locks stay as they are.
LATEST := .venv-latest
test-latest: TV = $(LATEST)
test-latest: chromium | $(UV)
	rm -rf $(LATEST)
	$(PYTHON) -m venv $(LATEST)
	$(UV) pip install --python $(LATEST)/bin/python --upgrade --compile-bytecode \
	  -e '.[test,demo]' -e './mlflow-quorum-guard[basic-auth]'
	@$(LATEST)/bin/python requirements/lockcheck.py --drift requirements/test.txt
	$(call run-pytest,,)

lint: $(VENV)/.installed-test
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

# Back to a fresh clone: the virtualenv, caches, and var/ (the demo's database and MLflow store).
clean:
	rm -rf $(VENV) $(LATEST) $(VAR) .pytest_cache .ruff_cache .mypy_cache *.egg-info
	find . -name __pycache__ -type d -prune -exec rm -rf {} +
