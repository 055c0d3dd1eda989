#!/usr/bin/env bash
# GPU evidence in one go (< 8 minutes on one GPU): trainkit vs a hand loop on MNIST-size and CIFAR-size
# generated data (time to accuracy, samples/s, bf16 / trainer.compile / channels_last, peak memory), then a
# 1-GPU nccl DDP smoke run under torchrun. Without a GPU, or with --cpu, the same table at tiny sizes on
# the CPU (about a minute), which is what the test suite runs.
#
#   bash benchmarks/gpu_check.sh          # on a machine with a CUDA GPU
#   bash benchmarks/gpu_check.sh --cpu    # the CPU fallback (--cpu --only mnist: the MLP rows alone)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python}"
MODE=()
if [[ "${1:-}" == "--cpu" ]]; then
  shift
  MODE=(--cpu)
elif ! "$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
  MODE=(--cpu)
fi
if [[ ${#MODE[@]} -eq 0 ]] && command -v nvidia-smi >/dev/null; then
  nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
fi
export OMP_NUM_THREADS="${OMP_NUM_THREADS:-1}"
# 7.5 minutes in all: the table, then the DDP smoke run (printed last by the same script)
timeout 450 "$PY" benchmarks/gpu_check.py "${MODE[@]}" "$@"  # e.g. --only mnist
