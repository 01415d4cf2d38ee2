#!/usr/bin/env bash
# One prepared pass of every real-GPU check, for a machine with an NVIDIA GPU.
#   tests/gpu/run_on_gpu.sh [OUTDIR]      (OUTDIR default: $OUT or ./gpu-check-out)
# Prints and saves: the real nvidia-smi's view, our discovery XML, the health line, the `gpu`
# tests and the gpu_plugin unit tests run against real NVML. Needs python3 with pynvml
# (nvidia-ml-py) and pytest; a copy in build/gpu-vendor is used when they are not installed.
set -uo pipefail
cd "$(dirname "$0")/../.."
out="${1:-${OUT:-gpu-check-out}}"
mkdir -p "$out"
py=python3
if ! $py -c "import pynvml, pytest" 2>/dev/null && [ -d build/gpu-vendor ]; then
  export PYTHONPATH="$PWD/build/gpu-vendor${PYTHONPATH:+:$PYTHONPATH}"
fi
unset DLSUBMIT_GPU_TOPOLOGY
{
  echo "== host: $(uname -srm), $($py --version 2>&1), pynvml from $($py -c 'import pynvml; print(pynvml.__file__)' 2>&1)"
  echo "== torch/cupy: $($py -c 'import torch; print("torch", torch.__version__)' 2>/dev/null || echo none) $($py -c 'import cupy; print("cupy", cupy.__version__)' 2>/dev/null || echo none)"
  echo "== real nvidia-smi -L"; nvidia-smi -L 2>&1 || echo "(no real nvidia-smi)"
  nvidia-smi -x -q > "$out/real-nvidia-smi.xml" 2>&1 || true
  echo "== ours: nvidia-smi -L"; gpu_plugin/bin/nvidia-smi -L; echo "rc=$?"
  echo "== ours: time nvidia-smi -x -q (YARN allows 10 s)"
  TIMEFORMAT="%R s"
  time gpu_plugin/bin/nvidia-smi -x -q > "$out/ours-nvidia-smi.xml"; echo "rc=$?"
  cat "$out/ours-nvidia-smi.xml"
  echo "== ours: gpu-health"; gpu_plugin/bin/gpu-health; echo "rc=$?"
} 2>&1 | tee "$out/summary.txt"
echo "== pytest tests/gpu -m gpu" | tee -a "$out/summary.txt"
timeout 120 $py -m pytest tests/gpu -m gpu -v -s -rs -p no:cacheprovider --durations=5 2>&1 \
  | tee "$out/gpu-tests.txt"
gpu_rc=${PIPESTATUS[0]}
echo "== pytest tests/unit/test_gpu_*.py (real pynvml present)" | tee -a "$out/summary.txt"
timeout 120 $py -m pytest tests/unit/test_gpu_*.py -q -p no:cacheprovider 2>&1 | tail -5 \
  | tee "$out/unit-tests.txt"
unit_rc=${PIPESTATUS[0]}
echo "gpu tests rc=$gpu_rc, unit tests rc=$unit_rc" | tee -a "$out/summary.txt"
[ "$gpu_rc" = 0 ] && [ "$unit_rc" = 0 ]
