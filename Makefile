# dlsubmit: the two commands of the README are `make demo` and `make test`.
PYTHON ?= python3
SHELL := /bin/bash
.ONESHELL:
.SHELLFLAGS := -euo pipefail -c

# Where Hadoop's CLI and conf come from: an existing cluster (HADOOP_CONF_DIR set by the user)
# or the dev cluster that docker/cluster starts.
CLUSTER_ENV = if [ -z "$${HADOOP_CONF_DIR:-}" ]; then docker/cluster up; eval "$$(docker/cluster env)"; fi

.PHONY: install lint unit integration test demo cluster cluster-down bench gpu-test clean

install: .make/installed
.make/installed: pyproject.toml
	mkdir -p .make
	$(PYTHON) -m pip install -q -e '.[dev]'
	touch $@

lint: install
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy

unit: install
	$(PYTHON) -m pytest tests/unit -q

# Integration tests start the dev cluster themselves when HADOOP_CONF_DIR is unset; a cluster
# that cannot start fails them (never a skip).
integration: install
	$(PYTHON) -m pytest tests/integration -q -m yarn

test: install lint
	$(PYTHON) -m pytest tests/unit tests/integration -m "not gpu" -q -p no:cacheprovider

# Real-NVML tests: run on a machine with an NVIDIA GPU.
gpu-test: install
	$(PYTHON) -m pytest tests/gpu -m gpu -q

cluster:
	docker/cluster up

cluster-down:
	docker/cluster down

demo: install
	$(CLUSTER_ENV)
	$(PYTHON) -m client.cli submit examples/job.yaml --wait

bench: install
	$(CLUSTER_ENV)
	$(PYTHON) bench/run.py

clean:
	rm -rf .make .mypy_cache .ruff_cache *.egg-info
