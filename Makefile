# The two commands a new user needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip

# Installs come from the hashed locks in requirements/ (made by `make lock`), never from the
# ranges in pyproject.toml: runtime.txt (production, the Docker image), run.txt (+ the `run`
# extra: moto, DuckDB; what `make run` needs) and dev.txt (+ tests, bench, lint; a superset of
# run.txt). A stamp named after the checksum of pyproject.toml and the lock makes a second
# install a no-op, and any change to either installs again.
RUN_LOCK := requirements/run.txt
DEV_LOCK := requirements/dev.txt
RUN_STAMP := $(VENV)/.installed-run-$(shell cat pyproject.toml $(RUN_LOCK) | cksum | cut -d' ' -f1)
DEV_STAMP := $(VENV)/.installed-dev-$(shell cat pyproject.toml $(DEV_LOCK) | cksum | cut -d' ' -f1)
# The project itself, editable, without dependencies: the lock has them all.
INSTALL_PROJECT := $(PIP) install --quiet --no-deps -e .

.PHONY: run test install install-dev lint format bench lock hooks clean-demo

define make_venv
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
endef

$(RUN_STAMP):
	$(make_venv)
	@if [ -e $(DEV_STAMP) ]; then echo "run dependencies: already there (dev includes them)"; else \
	  set -e; $(PIP) install --quiet --require-hashes -r $(RUN_LOCK); $(INSTALL_PROJECT); fi
	@rm -f $(VENV)/.installed-run-* $(VENV)/.installed-[0-9]*
	@touch $@

$(DEV_STAMP):
	$(make_venv)
	$(PIP) install --quiet --require-hashes -r $(DEV_LOCK)
	$(INSTALL_PROJECT)
	@rm -f $(VENV)/.installed-dev-* $(VENV)/.installed-run-* $(VENV)/.installed-[0-9]*
	@touch $@ $(RUN_STAMP)

## make install: what `make run` needs (runtime + the run extra); make install-dev: + tests, lint, bench.
install: $(RUN_STAMP)
install-dev: $(DEV_STAMP)

## make run: install, prepare demo data, start the portal and its embedded services on loopback.
run: $(RUN_STAMP)
	@mkdir -p var
	@$(PY) scripts/init_env.py
	@$(PY) manage.py migrate --no-input -v 0
	@$(PY) manage.py seed_demo
	@$(PY) manage.py runstack

## make test: install the dev dependencies and run the whole suite.
test: $(DEV_STAMP)
	$(VENV)/bin/pytest -n auto --dist load $(PYTEST_ARGS)

## make lint: the fast checks (also .pre-commit-config.yaml): ruff, formatting, the layers of
## docs/architecture.md (import-linter), types (mypy: strict on proxy/, checked on billing/),
## no missing migration.
lint: $(DEV_STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/mypy
	DJANGO_SETTINGS_MODULE=portal.settings_test $(PY) manage.py makemigrations --check --dry-run

format: $(DEV_STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## make lock: re-solve the locks from pyproject.toml after changing a dependency there. Each lock
## keeps the versions of the one before it, so the three agree; `UPGRADE=1 make lock` moves every
## package to its newest allowed version instead.
UV_COMPILE = $(VENV)/bin/uv pip compile pyproject.toml --quiet --universal --python-version 3.11 \
	--generate-hashes --custom-compile-command "make lock" $(if $(UPGRADE),--upgrade)
lock: $(DEV_STAMP)
	$(UV_COMPILE) -o requirements/runtime.txt
	$(UV_COMPILE) --extra run -c requirements/runtime.txt -o requirements/run.txt
	$(UV_COMPILE) --extra dev -c requirements/run.txt -o requirements/dev.txt

## make hooks: run `make lint`'s checks on every commit (pre-commit, .pre-commit-config.yaml).
hooks: $(DEV_STAMP)
	$(VENV)/bin/pre-commit install

## make bench: the shared data set (PostgreSQL: BENCH_PORTAL_DATABASE_URL, else DATABASE_URL's
## server, else 127.0.0.1:5432; generated once and cached), then every benchmark in bench/,
## results written to bench/RESULTS.md. BENCH_SCALE=0.01 for a quick run on a small data set.
bench: $(DEV_STAMP)
	@$(PY) -m bench.dataset --check
	$(PY) -m bench.dataset
	$(PY) -m bench.run

## make clean-demo: forget the local demo database, settings and queues (asks first).
clean-demo:
	@read -p "Delete var/ and .env (the local demo data)? [y/N] " ans && [ "$$ans" = y ] && rm -rf var .env || echo "Nothing deleted."
