# The two commands a new user needs: `make run` and `make test`. Everything else is optional.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | cksum | cut -d' ' -f1)

.PHONY: run test install lint format bench clean-demo

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (found %s)" % sys.version.split()[0])'
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip
	$(PIP) install --quiet -e '.[dev]'
	@rm -f $(VENV)/.installed-*
	@touch $@

install: $(STAMP)

## make run: install, prepare demo data, start the portal and its embedded services on loopback.
run: $(STAMP)
	@mkdir -p var
	@$(PY) scripts/init_env.py
	@$(PY) manage.py migrate --no-input -v 0
	@$(PY) manage.py seed_demo
	@$(PY) manage.py runstack

## make test: install the dev dependencies and run the whole suite.
test: $(STAMP)
	$(VENV)/bin/pytest $(PYTEST_ARGS)

lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: $(STAMP)
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

## make bench: the shared data set (PostgreSQL: BENCH_PORTAL_DATABASE_URL, else DATABASE_URL's
## server, else 127.0.0.1:5432; generated once and cached), then every benchmark in bench/,
## results written to bench/RESULTS.md. BENCH_SCALE=0.01 for a quick run on a small data set.
bench: $(STAMP)
	@$(PY) -m bench.dataset --check
	$(PY) -m bench.dataset
	$(PY) -m bench.run

## make clean-demo: forget the local demo database, settings and queues (asks first).
clean-demo:
	@read -p "Delete var/ and .env (the local demo data)? [y/N] " ans && [ "$$ans" = y ] && rm -rf var .env || echo "Nothing deleted."
