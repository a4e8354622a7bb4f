# The two fresh-machine commands are `make demo` and `make test` (README). Both create or
# refresh .venv/ with the package installed editable and its test extras.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PYTEST_ARGS ?=

.PHONY: venv test test-fast real-components demo dist bench clean

venv: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	@# pip's and setuptools' output (an editable install warns) only when the install fails
	@$(PY) -m pip install --quiet --upgrade pip > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	@$(PY) -m pip install --quiet -e '.[test]' > $(VENV)/pip.log 2>&1 || { cat $(VENV)/pip.log; exit 1; }
	touch $(STAMP)

# The whole suite, the end-to-end tests on both sandbox backends (`--backend both`: each
# module's tests on the API double, then on the real control plane; unit tests run once).
# The real backend adds 18 min on a 2-core machine at load 1-4 (its 42 modules with
# `--backend real`, 2026-12-06: 416 passed, 9 double-only skipped) and up to ~37 min at
# load 5-14 (a real control plane per module, ~30 s to start, is much of it): `make test`
# about 35-55 min, well within CI's 90. Those figures are on the loopback pod network; on
# netns, the default as root, `--backend real` alone took 49 min + 16 min (-m slow) at load
# 7-10 (2026-12-07, docs/real-components.md). The whole `make test` on netns, from a clean
# clone with CI=true on a quiet 2-core machine (2026-12-07): 2479 passed, 11 skipped in 39 min.
# Then real Istio (`--backend istio`: `python -m sandbox up --backend real --istio real`, as
# root) for the modules green there (docs/real-istio.md, "sandbox up on real Istio": the tally
# and what is left out), their end-to-end tests only (`-m real`: the unit tests ran above).
# This pass alone (2026-12-07, load 4-7 on 2 cores): 60 passed, 23 skipped (sandbox_istiod_only)
# in 7 min, one real-Istio sandbox per module (15 s to start when quiet, ~110 s at load 25;
# at load 15-35 the same modules took ~35 min): `make test` about 46 min quiet, within CI's 90.
# accesslog joined after its follow window was fixed (its e2e on real Istio: 10 passed in 57 s),
# sniff after node mode found real pilot-agent's namespace (38 passed, 3 marked, 4 min).
# The pass with accesslog and sniff (2026-12-07, quiet 2-core machine): 117 passed, 29 skipped
# (sandbox_istiod_only) in 10 min 17 s. cli joined once the sandbox istiod's bootstrap, outbound
# listeners and route configs were real istiod's (its whole directory on real Istio: 62 passed,
# 3 marked in 3 min 36 s at load ~3). The pass with cli: 175 passed, 33 marked, 0 failed in
# 13 min 35 s beside another suite (2026-12-07).
ISTIO_MODULES ?= tests/sync tests/loglevel tests/admin tests/dashboard tests/describe tests/analyze \
	tests/accesslog tests/sniff tests/cli
test: $(STAMP) real-components
	scripts/system_tools.sh
	$(PY) -m pytest --backend both $(PYTEST_ARGS)
	@if [ "$$(id -u)" = 0 ]; then $(PY) -m pytest --backend istio -m real $(ISTIO_MODULES) $(PYTEST_ARGS); \
	else echo "make test: real Istio's pass left out: it needs root (network namespaces)"; fi

# Everything but the slow matrix (`-m slow`) and the real-components backend (`-m real`), for
# a quick loop while developing; needs no Go. It still runs every command end to end once,
# on the API double only.
# On a loaded 2-core machine: 3 min 55 s (1028 tests) against 10 min for `-m "not real"`
# (1200 tests).
test-fast: $(STAMP)
	scripts/system_tools.sh
	$(PY) -m pytest -m "not slow and not real" $(PYTEST_ARGS)

# etcd, kube-apiserver, kube-controller-manager, kube-scheduler, istioctl, pilot-discovery and
# pilot-agent from their Go modules (sandbox/real/go/versions.env), cached outside the checkout.
real-components:
	scripts/real_components.sh

# BACKEND=real: the demo on the real control plane (needs `make real-components`);
# BACKEND=istio: the same with real Istio (istiod a pod, real sidecars; needs root)
BACKEND ?= double
demo: $(STAMP) $(if $(filter real istio,$(BACKEND)),real-components)
	$(PY) -m sandbox.demo --backend $(BACKEND)

bench: $(STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf build dist *.egg-info .pytest_cache

-include Makefile.dist.mk
