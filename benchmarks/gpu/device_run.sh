#!/usr/bin/env bash
# Run ON the GPU machine, in the repository root, in the call that carries ".whl" after the
# onnxruntime-gpu parts were staged into /tmp/w by earlier, chained calls (see benchmarks/gpu/README.md).
# Installs everything into /tmp/site and prints the CUDA benchmark tables (visual encoder:
# skavc fp32/fp16 against PyTorch eager fp32 and fp16 autocast, same host frames, same run),
# then benchmarks/gpu/estimator_threads.py. Extra arguments go to bench_encoders.py instead of
# its defaults (--frames 4096 --skip audio estimator) and skip estimator_threads.py.
set -euo pipefail
ls /tmp/w/part.* > /dev/null
cat /tmp/w/part.* > /tmp/w/onnxruntime_gpu-1.31.1-cp312-cp312-manylinux_2_28_x86_64.whl
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site \
  /tmp/w/onnxruntime_gpu-*.whl .whl/*.whl
export PYTHONPATH=/tmp/site:$PWD PYTHONUNBUFFERED=1 SKAVC_HOME=/tmp/skavc-home
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
python3 -c "import onnxruntime as ort; ort.preload_dlls(); print('onnxruntime', ort.__version__, ort.get_available_providers())"
args=("$@")
[ ${#args[@]} -gt 0 ] || args=(--frames 4096 --skip audio estimator)
python3 benchmarks/bench_encoders.py --device cuda --precision fp32 fp16 "${args[@]}"
# Threads, coalescing and changing shapes on CUDA (about a minute when nothing is slow; bounded
# so that a slow path cannot take the lease).
[ $# -gt 0 ] || timeout 240 python3 benchmarks/gpu/estimator_threads.py
