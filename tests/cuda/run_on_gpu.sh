#!/usr/bin/env bash
# One prepared run on a CUDA machine: the CUDA tests, then `bench speed` with the fast-path ablation.
# Usage: OUT=folder bash tests/cuda/run_on_gpu.sh   (results and logs land in $OUT)
# Wheels for packages the GPU machine lacks (platformdirs on the lent H100 image) may be put in .whl/
# (git-ignored); they are installed beside the image's packages, not over them.
set -uo pipefail
cd "$(dirname "$0")/../.."
if compgen -G ".whl/*.whl" >/dev/null; then
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
    && export PYTHONPATH=/tmp/site${PYTHONPATH:+:$PYTHONPATH}
fi
OUT=${OUT:-gpu-results}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
started=$(date +%s)
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv 2>&1 | tee "$OUT/gpu.txt"
python3 -c "import torch, sys; print(sys.version.split()[0], torch.__version__, torch.version.cuda, \
torch.cuda.get_device_name(), 'bf16', torch.cuda.is_bf16_supported())" 2>&1 | tee -a "$OUT/gpu.txt"
timeout "${TESTS_TIMEOUT:-180}" python3 -m pytest -q -p no:cacheprovider tests/cuda ${CUDA_TESTS_K:+-k "$CUDA_TESTS_K"} 2>&1 | tee "$OUT/cuda-tests.txt"
echo "tests done after $(( $(date +%s) - started )) s"
timeout "${BENCH_TIMEOUT:-300}" python3 main.py bench speed --device cuda --ablation \
  --out "$OUT/bench-speed-cuda.json" 2>&1 | tee "$OUT/bench-speed-cuda.txt"
echo "all done after $(( $(date +%s) - started )) s"
