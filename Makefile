# Everything runs from a local virtualenv (.venv) built from the lock file.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
HOST   ?= 127.0.0.1
PORT   ?= 8000
PACKAGES := specs handlers registry transports policy audit storage specops
# setup.py compiles some modules with mypyc (SPECOPS_PURE_PYTHON=1: none) into extension
# modules beside their sources. They are built from those sources and from what mypy knew
# of the modules they import (types, constants): the packages below.
NATIVE_SOURCES := $(shell find registry transports policy audit storage -name '*.py' \
                    -not -path 'storage/migrations/*')
BUILD := $(if $(filter 1 true yes,$(SPECOPS_PURE_PYTHON)),pure,compiled)

.PHONY: install serve test lint format lock bench clean clean-native

$(BIN)/.deps: requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet --require-hashes -r requirements.lock
	touch $@

# Installed again whenever a source changes: an extension module left older than its
# source would be imported instead of it. Marked with the time the build started, so
# that a source edited while it compiled is seen as changed (here and by specops.native).
$(BIN)/.installed-$(BUILD): $(BIN)/.deps pyproject.toml setup.py $(NATIVE_SOURCES)
	rm -f $(BIN)/.installed $(BIN)/.installed-*
	$(MAKE) --no-print-directory clean-native
	touch $@.started
	$(BIN)/python -m pip install --quiet --no-deps --no-build-isolation -e .
	find . -name '*.so' -not -path './$(VENV)/*' -not -path './build/*' -exec touch -r $@.started {} +
	mv $@.started $@

install: $(BIN)/.installed-$(BUILD)

serve: install
	$(BIN)/specops serve --host $(HOST) --port $(PORT)

test: install
	$(BIN)/python -m pytest -q

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# Re-pin every dependency (needs uv: pip install uv).
lock:
	uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes \
		--output-file requirements.lock --quiet

# wrk drives the load (Debian's package; installed here when missing, which needs root).
bench: install
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk)
	$(BIN)/python -m bench

# The extension modules of an editable install (the next `make install` builds them again).
clean-native:
	rm -f specops_native__mypyc.*.so
	find $(PACKAGES) -name '*.so' -delete

clean: clean-native
	rm -rf $(VENV) var build .mypy_cache .ruff_cache .pytest_cache
