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

# The data demo (examples/data_job.yaml): its .npz shards are uploaded to HDFS once (WebHDFS, no
# JVM); its checkpoint directory is cleared so that each demo shows a fresh run, the injected
# failure at step 18 and the resume from step 15.
DEMO_HDFS = /tmp/dlsubmit-demo
demo: install
	$(CLUSTER_ENV)
	$(PYTHON) - <<'EOF'
	import io, sys
	import numpy as np
	sys.path.insert(0, "examples")
	from train import synthetic_shard
	from client.hdfs import Hdfs
	hdfs, data = Hdfs(), "$(DEMO_HDFS)/data"
	def shard(i): x, y = synthetic_shard(0, 4096, 16, i, 4); b = io.BytesIO(); np.savez(b, x=x, y=y); return b.getvalue()
	upload = not hdfs.exists(data)
	if upload: hdfs.delete(data + ".tmp", recursive=True)
	[hdfs.write_bytes(f"{data}.tmp/shard-{i}.npz", shard(i)) for i in range(4) if upload]
	if upload: hdfs.rename(data + ".tmp", data); print(f"uploaded the data set to hdfs://{data}", file=sys.stderr)
	hdfs.delete("$(DEMO_HDFS)/runs/ddp-data-demo", recursive=True)
	EOF
	$(PYTHON) -m client.cli submit examples/data_job.yaml --wait

bench: install
	$(CLUSTER_ENV)
	$(PYTHON) bench/run.py

clean:
	rm -rf .make .mypy_cache .ruff_cache *.egg-info
