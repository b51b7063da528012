#!/usr/bin/env bash
# One prepared run for a machine with an NVIDIA GPU (e.g. the H200 device machine): builds the CUDA
# variant, runs the core parity tests with every layer on the GPU, runs the 3B batching and grammar fast-forward
# benchmarks, and writes a summary. Everything it prints also goes to ${OUT:-gpu-check-out}/.
#
#   bash scripts/gpu-check.sh            # CUDA_ARCHS=90 by default (Hopper); e.g. CUDA_ARCHS="80;86;89;90"
set -uo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-gpu-check-out}
mkdir -p "$out"
exec > >(tee "$out/log.txt") 2>&1
started=$SECONDS
step() { printf '\n== %s (%ss)\n' "$*" "$((SECONDS - started))"; }

step "machine"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || echo "nvidia-smi not available"
nvcc --version | tail -1 || true

step "install"
[ -d node_modules ] || npm ci --ignore-scripts --no-audit --no-fund
npm run vendor
npm run compile >/dev/null

step "build the CUDA variant (sm_${CUDA_ARCHS:-90})"
t0=$SECONDS
CMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" node scripts/build-native.mjs --gpu cuda --out build/cuda
echo "cuda build: $((SECONDS - t0)) s, $(du -h build/cuda/llama-vlm.node | cut -f1)"
tools="$(CMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHS:-90}" node scripts/build-llama-tools.mjs --gpu cuda --print-dir | tail -n 1)"

step "addon on the GPU"
LLAMA_VLM_GPU=cuda node -e "import('./dist/index.js').then(m => { const v = m.version(); console.log(v.variant, v.loadedBackends.join(','), JSON.stringify(m.devices().map(d => ({ name: d.name, type: d.type, free: d.memoryFree }))));})"

step "parity with gpuLayers 99"
LLAMA_VLM_GPU=cuda LLAMA_VLM_TEST_GPU_LAYERS=99 LLAMA_VLM_TEST_TOOLS_DIR="$tools" npx vitest run test/model/core.test.ts -t "parity" 2>&1 | tee "$out/parity.txt"

step "3B batching benchmark (N = 1, 2, 4, 8)"
LLAMA_VLM_GPU=cuda node scripts/bench-batch.mjs --runs 3 --parallel 1,2,4,8 2>&1 | tee "$out/bench.txt"

step "grammar fast-forward benchmark (3B, every layer on the GPU)"
LLAMA_VLM_GPU=cuda node scripts/bench-fast-forward.mjs --runs 3 --gpu-layers 99 --tools "$tools" 2>&1 | tee "$out/fast-forward.txt"

step "summary"
{
    echo "# gpu-check $(date -u +%FT%TZ)"
    nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null
    grep -E "Tests|✓|×" "$out/parity.txt" | tail -5
    sed -n '/^Text generation/,$p' "$out/bench.txt"
    sed -n '/^Grammar fast-forward/,$p' "$out/fast-forward.txt"
} > "$out/summary.md"
cat "$out/summary.md"
