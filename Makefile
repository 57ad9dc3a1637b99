# The two set-up commands: `make demo` and `make test` (see README). Both install what they need.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
export ERCHUB_DATA_DIR ?= $(CURDIR)/erchub-data
EXAMPLE := examples/sine-wave

.PHONY: demo test install provision provision-docker provision-service-user lint labextension-test unit bench clean cluster

LABEXTENSION_SOURCES := $(shell find labextension -path labextension/node_modules -prune -o -type f -print)

# The editable install's build hook (hatch-jupyter-builder) compiles labextension/ with npm into
# extensions/labextension, which the install copies to the venv's share/jupyter/labextensions.
# It installs with `npm ci` (hatch_build.npm_ci_builder): an install never rewrites the committed
# lock file, which the recipe checks (`make test` installs first, so CI sees it).
$(VENV)/.installed: pyproject.toml hatch_build.py $(LABEXTENSION_SOURCES)
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	@mkdir -p build && cp labextension/package-lock.json build/labextension-lock.before.json
	$(PY) -m pip install --quiet -e '.[hub,test,dev]'
	@test -f extensions/labextension/static/style.js || \
	  { echo "the lab extension was not built: see the npm errors above"; exit 1; }
	@cmp -s build/labextension-lock.before.json labextension/package-lock.json || \
	  { echo "the lab extension's build rewrote labextension/package-lock.json (npm ci must not)"; \
	    exit 1; }
	touch $@

# configurable-http-proxy, which the hub starts (package.json pins it)
node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

install: $(VENV)/.installed node_modules/.installed

# Docker engine and the local base image, the PostgreSQL server of the postgres tier, and headless
# Chromium for the browser tier. Without root on Debian a script exits 3: its tier then skips with
# its reason, except in CI (CI=true), where that is a failure.
provision-docker:
	@bash config/provision/docker-engine.sh; rc=$$?; \
	if [ $$rc = 0 ]; then bash config/provision/base-image.sh; \
	elif [ $$rc = 3 ] && [ -z "$$CI" ]; then echo "docker tier will be skipped"; \
	else exit $$rc; fi

# The unprivileged user the erc service runs as under a root hub (after Docker: it joins the
# group docker). Without root it exits 3 and the service runs as the hub's user.
provision-service-user: install provision-docker
	@bash config/provision/service-user.sh $(PY); rc=$$?; \
	if [ $$rc = 3 ] && [ -z "$$CI" ]; then echo "the erc service will run as the hub's user"; \
	elif [ $$rc != 0 ]; then exit $$rc; fi

provision: provision-docker provision-service-user
	@bash config/provision/postgres.sh; rc=$$?; \
	if [ $$rc = 3 ] && [ -z "$$CI" ]; then echo "postgres tier will be skipped"; \
	elif [ $$rc != 0 ]; then exit $$rc; fi
	@bash config/provision/chromium.sh; rc=$$?; \
	if [ $$rc = 3 ] && [ -z "$$CI" ]; then echo "browser tier will be skipped"; \
	elif [ $$rc != 0 ]; then exit $$rc; fi

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	@# mypy sees the components under their import names (erchub.services, ...) through a tree
	@# of links, so that imports across components are checked too
	@rm -rf build/typecheck && mkdir -p build/typecheck/erchub
	@ln -s $(CURDIR)/erchub/* build/typecheck/erchub/
	@for d in hub spawner services extensions; do ln -s $(CURDIR)/$$d build/typecheck/erchub/$$d; done
	cd build/typecheck && $(CURDIR)/$(VENV)/bin/mypy --config-file $(CURDIR)/pyproject.toml erchub

# The lab extension's TypeScript: strict type check and unit tests
labextension-test: install
	cd labextension && npm run lint && npm test

test: install provision lint labextension-test
	$(VENV)/bin/pytest

unit: install
	$(VENV)/bin/pytest tests/unit

# Loads the example ERC, prints its launch link and runs the hub at http://127.0.0.1:8000
demo: install provision-docker provision-service-user
	$(PY) -m erchub.hub.demo $(EXAMPLE)

# A local test cluster: Docker Swarm on nested engines, with a private registry (README, "Past one
# machine"); `.venv/bin/erchub cluster status` shows it, `.venv/bin/erchub cluster down` removes it
cluster: install provision-docker
	$(VENV)/bin/erchub cluster up

bench: install provision
	$(PY) bench/run.py
	$(PY) bench/store.py
	$(PY) bench/service.py
	$(PY) bench/load.py
	$(PY) bench/launch.py
	$(PY) bench/parameters.py
	$(PY) bench/cluster.py

clean:
	rm -rf $(VENV) erchub-data build *.egg-info extensions/labextension labextension/lib
