# The two set-up commands: `make demo` and `make test` (see README). Both install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export ERCHUB_DATA_DIR ?= $(CURDIR)/erchub-data
EXAMPLE := examples/sine-wave

.PHONY: demo test install provision lint unit bench clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[hub,test,dev]'
	touch $@

install: $(VENV)/.installed

# Docker engine and the local base image. Without root on Debian the engine script exits 3:
# the docker tier then skips with its reason, except in CI (CI=true), where that is a failure.
provision:
	@bash config/provision/docker-engine.sh; rc=$$?; \
	if [ $$rc = 0 ]; then bash config/provision/base-image.sh; \
	elif [ $$rc = 3 ] && [ -z "$$CI" ]; then echo "docker tier will be skipped"; \
	else exit $$rc; fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy

test: install provision lint
	$(VENV)/bin/pytest

unit: install
	$(VENV)/bin/pytest tests/unit

demo: install provision
	$(VENV)/bin/erchub run $(EXAMPLE) --check

bench: install provision
	$(PY) bench/run.py

clean:
	rm -rf $(VENV) erchub-data build *.egg-info
