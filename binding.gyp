# node-gyp hands off to CMake (CMakeLists.txt is the one source of truth for the native build).
# `node-gyp rebuild` — run by node-gyp-build when no prebuilt binary fits, and by prebuildify — calls
# scripts/build-native.mjs, which builds with cmake-js and copies the addon into build/Release.
# Set LLAMA_VLM_PORTABLE=1 for a prebuilt-style binary, LLAMA_VLM_GPU=cuda|vulkan|metal for a GPU one.
{
  "targets": [
    {
      "target_name": "llama_vlm",
      "type": "none",
      "actions": [
        {
          "action_name": "cmake_build",
          "inputs": ["CMakeLists.txt"],
          "outputs": ["<(PRODUCT_DIR)/llama-vlm.node"],
          "action": ["node", "<(module_root_dir)/scripts/build-native.mjs", "--out", "<(PRODUCT_DIR)"]
        }
      ]
    }
  ]
}
