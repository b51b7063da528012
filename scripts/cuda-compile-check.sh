#!/usr/bin/env bash
# Compiles the CUDA variant on a machine without a GPU, to prove the build (it cannot run here).
#
#   bash scripts/cuda-compile-check.sh [ARCHS]        # default 90 (H100/H200, sm_90)
#
# Needs nvcc (a CUDA toolkit under /usr/local/cuda*) and cuBLAS, which ggml-cuda links. When the toolkit has no
# cuBLAS, the script takes it from an nvidia_cublas wheel of the same CUDA major version (LLAMA_VLM_CUBLAS_WHEEL,
# or the first one found under /opt/*/files/), unpacked into ~/.cache/llama-vlm/. Without a driver there is no
# libcuda.so to link, so this check builds with GGML_CUDA_NO_VMM=ON (ggml's CUDA memory pool then uses
# cudaMalloc instead of virtual memory management); release builds and scripts/gpu-check.sh keep VMM on.
# Output: build/cuda-check/llama-vlm.node, its size, and the build time.
set -euo pipefail
cd "$(dirname "$0")/.."
archs="${1:-90}"

nvcc="${CUDACXX:-$(ls -d /usr/local/cuda*/bin/nvcc 2>/dev/null | sort -V | tail -1)}"
if [[ -z "$nvcc" || ! -x "$nvcc" ]]; then
    echo "cuda-compile-check: no nvcc found (set CUDACXX)" >&2
    exit 1
fi
toolkit="$(dirname "$(dirname "$(readlink -f "$nvcc")")")"
major="$("$nvcc" --version | sed -n 's/.*release \([0-9]*\)\..*/\1/p')"
echo "nvcc: $nvcc (CUDA $major, toolkit $toolkit)"

defines=(--define GGML_CUDA_NO_VMM=ON)
if ! find "$toolkit" -name cublas_v2.h -print -quit | grep -q .; then
    wheel="${LLAMA_VLM_CUBLAS_WHEEL:-$(ls /opt/*/files/nvidia_cublas-"$major".*.whl 2>/dev/null | sort -V | tail -1)}"
    if [[ -z "$wheel" || ! -f "$wheel" ]]; then
        echo "cuda-compile-check: the toolkit has no cuBLAS and no nvidia_cublas-$major.*.whl was found" \
            "(set LLAMA_VLM_CUBLAS_WHEEL)" >&2
        exit 1
    fi
    cublas="$HOME/.cache/llama-vlm/$(basename "$wheel" .whl)"
    if [[ ! -d "$cublas/nvidia" ]]; then
        mkdir -p "$cublas"
        python3 -m zipfile -e "$wheel" "$cublas"
    fi
    root="$(dirname "$(find "$cublas/nvidia" -name cublas_v2.h -print -quit)")/.."
    root="$(readlink -f "$root")"
    # CMake's FindCUDAToolkit looks for the unversioned names.
    for lib in cublas cublasLt; do
        ln -sf "$(ls "$root"/lib/lib$lib.so.* | head -1)" "$root/lib/lib$lib.so"
    done
    echo "cuBLAS from $(basename "$wheel"): $root"
    defines+=(
        --define "CUDA_cublas_LIBRARY=$root/lib/libcublas.so"
        --define "CUDA_cublasLt_LIBRARY=$root/lib/libcublasLt.so"
        --define "CMAKE_CUDA_FLAGS=-isystem $root/include"
        --define "CMAKE_CXX_FLAGS=-isystem $root/include"
    )
fi

start=$SECONDS
CUDACXX="$nvcc" CMAKE_CUDA_ARCHITECTURES="$archs" \
    node scripts/build-native.mjs --gpu cuda --out build/cuda-check "${defines[@]}"
seconds=$((SECONDS - start))
binary=build/cuda-check/llama-vlm.node
echo "CUDA variant for sm_$archs compiled in ${seconds} s: $(du -h "$binary" | cut -f1) ($(stat -c %s "$binary") bytes)"
echo "linked CUDA libraries:"
ldd "$binary" | grep -E "cuda|cublas" || true
# The embedded device code names its target (cuobjdump is not in every toolkit install).
echo "device code for: $(strings -n 5 "$binary" | grep -oE '\bsm_[0-9]+a?\b' | sort -u | tr '\n' ' ')"
