# `make dist`: the krew release archive dist/kubectl-mesh-<version>.tar.gz (a python3 zipapp
# + LICENSE), its sha256 written into krew-manifest.yaml, and dist/mesh.yaml for the index.
# Included by the top-level Makefile.
DIST_PYTHON ?= .venv/bin/python

.PHONY: dist
dist:
	$(DIST_PYTHON) scripts/build_dist.py --out dist --manifest krew-manifest.yaml
