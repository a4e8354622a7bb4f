# The two fresh-machine commands are `make demo` and `make test` (README). Both create or
# refresh .venv/ with the package installed editable and its test extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv test test-fast demo dist bench clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[test]'
	touch $(STAMP)

test: $(STAMP)
	scripts/system_tools.sh
	$(PY) -m pytest $(PYTEST_ARGS)

# Everything but the slow matrix (`-m slow`), for a quick loop while developing.
test-fast: $(STAMP)
	scripts/system_tools.sh
	$(PY) -m pytest -m "not slow" $(PYTEST_ARGS)

demo: $(STAMP)
	$(PY) -m sandbox.demo

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf build dist *.egg-info .pytest_cache

-include Makefile.dist.mk
