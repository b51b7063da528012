#!/usr/bin/env bash
# Vulkan variant, proven on this machine without a GPU: Mesa's software Vulkan driver (lavapipe).
# Installs the toolchain, builds the Vulkan variant into build/vulkan/, and runs the core parity tests
# with every layer offloaded (gpuLayers 99) on lavapipe. Not part of CI (the shaders take minutes).
#
#   bash scripts/vulkan-check.sh
# lavapipe is a CPU-type Vulkan device, which ggml-vulkan skips unless asked: GGML_VK_VISIBLE_DEVICES=0.
set -euo pipefail
cd "$(dirname "$0")/.."
need=()
for pkg in glslc libvulkan-dev mesa-vulkan-drivers spirv-headers vulkan-tools; do
    dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}"; fi
vulkaninfo --summary 2>/dev/null | grep -E "deviceName|driverName" || true

npm run compile >/dev/null
start=$SECONDS
node scripts/build-native.mjs --gpu vulkan --out build/vulkan
echo "vulkan variant built in $((SECONDS - start)) s: $(du -h build/vulkan/llama-vlm.node | cut -f1)"

# The reference: llama.cpp's own tools built with the same Vulkan backend, all layers offloaded too.
tools="$(node scripts/build-llama-tools.mjs --gpu vulkan --print-dir | tail -n 1)"
export LLAMA_VLM_TEST_TOOLS_DIR="$tools"
export LLAMA_VLM_GPU=vulkan GGML_VK_VISIBLE_DEVICES=0 LLAMA_VLM_TEST_GPU_LAYERS=99
# lavapipe runs shaders on the CPU: a case takes tens of seconds on a small machine.
export LLAMA_VLM_TEST_TOOL_TIMEOUT_MS=900000
# Mesa 22.3's lavapipe segfaults inside libvulkan_lvp.so running ggml-vulkan's flash-attention shaders for the
# tiny smolvlm text model (llama.cpp's own llama-mtmd-cli too, exit 139; fine with -fa off): both sides run
# without flash attention here. See docs/gpu.md.
export LLAMA_VLM_TEST_FLASH_ATTN=off
node -e "import('./dist/index.js').then(m => { const v = m.version(); console.log('loaded', v.variant, v.loadedBackends.join(','), m.devices().map(d => d.name + ' (' + d.description + ')').join(', ')); })"
npx vitest run test/model/core.test.ts -t "parity" --testTimeout=3600000
