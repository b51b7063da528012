#!/usr/bin/env bash
# The test suite under AddressSanitizer. Builds the addon together with llama.cpp, ggml and mtmd
# instrumented (RelWithDebInfo) into build/asan/, then runs test/unit and test/model with libasan
# preloaded into node and LLAMA_VLM_ADDON pointing at that build. Every process the tests start
# (vitest's forked worker, CLI and process-exit children, llama.cpp's reference tools) inherits the
# environment: node children load the same instrumented addon, the tools run uninstrumented with the
# runtime preloaded. A probe preloaded into every node process records each addon it loads, so the
# run proves that no process fell back to another build.
#
#   bash scripts/asan-check.sh [--no-build] [--leaks] [-- vitest arguments]
#
#   --no-build  reuse build/asan/ as it is
#   --leaks     LeakSanitizer pass instead: the suite runs in worker threads of one process (a thread's
#               teardown runs every native finalizer, so what the addon still holds afterwards is a real
#               leak) and leak reports whose allocation stack passes through native/ fail the run. Node's,
#               V8's, libuv's and libvips's own allocations never pass through it and are not counted.
#
# Reports land in .cache/asan/<pass>/ (asan.<pid> files, vitest.log, addons.jsonl). Exit status: 0
# clean; 1 an ASan error or a leak in the addon; 2 the tests failed without a report; 3 a process ran
# something other than build/asan/llama-vlm.node.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

build=1
leaks=0
while (($#)); do
    case $1 in
        --no-build) build=0 ;;
        --leaks) leaks=1 ;;
        --) shift && break ;;
        *) echo "asan-check: unknown argument $1" >&2 && exit 64 ;;
    esac
    shift
done

addon=$root/build/asan/llama-vlm.node
if ((build)); then
    start=$SECONDS
    node scripts/build-native.mjs --asan --debug-info --out build/asan
    echo "asan-check: ASan build took $((SECONDS - start)) s"
fi
[[ -f $addon ]] || { echo "asan-check: $addon is missing (run without --no-build)" >&2 && exit 64; }

# Instrumented code calls __asan_report_* on its checked loads and stores: one function from each
# library linked into the addon must contain such calls, or that library was built without ASan.
disassembly=$(mktemp)
trap 'rm -f "$disassembly"' EXIT
tokenize=$(nm "$addon" | awk '!found && $3 ~ /^_Z[0-9]+common_tokenize/ { print $3; found = 1 }')
for fn in mtmd_bitmap_init llama_batch_init ggml_new_tensor_impl ggml_graph_compute "$tokenize"; do
    objdump -d --no-show-raw-insn "--disassemble=$fn" "$addon" >"$disassembly" 2>/dev/null || true
    if ! grep -q "<$fn>:" "$disassembly"; then
        echo "asan-check: $fn not found in $addon: cannot tell whether its library is instrumented" >&2
    elif ! grep -q "__asan_report" "$disassembly"; then
        echo "asan-check: $fn in $addon is not instrumented: its library was built without ASan" >&2
        exit 64
    fi
done

libasan=$(gcc -print-file-name=libasan.so)
[[ -f $libasan ]] || { echo "asan-check: gcc has no libasan.so" >&2 && exit 64; }

pass=$([[ $leaks == 1 ]] && echo leaks || echo asan)
logs=$root/.cache/asan/$pass
rm -rf "$logs"
mkdir -p "$logs"

cat >"$logs/probe.cjs" <<'EOF'
// Preloaded into every node process of the run: records each llama-vlm addon that loads, with whether
// the ASan runtime is mapped in the process.
const fs = require("node:fs");
const dlopen = process.dlopen;
process.dlopen = function (module, filename, ...rest) {
    const result = dlopen.call(this, module, filename, ...rest);
    if (/llama-vlm[^/]*\.node$/.test(filename)) {
        const asan = fs.readFileSync("/proc/self/maps", "utf8").includes("libasan");
        fs.appendFileSync(process.env.LLAMA_VLM_ASAN_PROBE, `${JSON.stringify({ pid: process.pid, filename, asan })}\n`);
    }
    return result;
};
// The leak pass checks the vitest process only: children that exit with native objects still held by
// JS (the process-exit tests) would report them, and V8's heap is not scanned for the references.
if (process.env.LLAMA_VLM_ASAN_LEAK_ROOT === "1") {
    delete process.env.LLAMA_VLM_ASAN_LEAK_ROOT;
    process.env.ASAN_OPTIONS = process.env.ASAN_OPTIONS.replace("detect_leaks=1", "detect_leaks=0");
}
EOF

# procps' ps deadlocks in textdomain() (glibc's _nl_state_lock) when libasan is preloaded, and the
# isolation tests list child processes with it: ps runs without the preload.
mkdir -p "$logs/bin"
printf '#!/bin/sh\nexec env -u LD_PRELOAD %s "$@"\n' "$(command -v ps)" >"$logs/bin/ps"
chmod +x "$logs/bin/ps"
export PATH=$logs/bin:$PATH

export LD_PRELOAD=$libasan
export LLAMA_VLM_ADDON=$addon LLAMA_VLM_GPU=cpu
export LLAMA_VLM_ASAN_PROBE=$logs/addons.jsonl
export NODE_OPTIONS="--require=$logs/probe.cjs"
# Reports go to files, one per process, so a child's report is kept even when a test swallows its stderr.
asan_common="log_path=$logs/asan"
# Instrumented llama.cpp runs a few times slower: tests get the hooks' 10 minutes instead of 2.
vitest_args=(run test/unit test/model --testTimeout=600000)
if ((leaks)); then
    export ASAN_OPTIONS="$asan_common:detect_leaks=1"
    export LSAN_OPTIONS="exitcode=0:max_leaks=0:print_suppressions=0"
    export LLAMA_VLM_ASAN_LEAK_ROOT=1
    vitest_args+=(--pool=threads)
else
    export ASAN_OPTIONS="$asan_common:detect_leaks=0"
fi

echo "asan-check: $pass pass, logs in ${logs#"$root"/}"
start=$SECONDS
set +e
node node_modules/vitest/vitest.mjs "${vitest_args[@]}" "$@" 2>&1 | tee "$logs/vitest.log"
tests=${PIPESTATUS[0]}
set -e
echo "asan-check: tests ran in $((SECONDS - start)) s, vitest exit status $tests"
unset LD_PRELOAD NODE_OPTIONS

status=0
errors=$(grep -l "ERROR: AddressSanitizer" "$logs"/asan.* 2>/dev/null || true)
if [[ -n $errors ]]; then
    for f in $errors; do
        echo "asan-check: ASan report in ${f#"$root"/}:"
        grep -m1 -A30 "ERROR: AddressSanitizer" "$f" | sed 's/^/    /'
    done
    status=1
fi

if ((leaks)); then
    # One leak record: the "Direct/Indirect leak of" line and its stack up to the blank line.
    awk -v out="$logs/addon-leaks.txt" '
        /^(Direct|Indirect) leak of/ { rec = $0; keep = 0; inrec = 1; next }
        inrec && /^$/ { if (keep) print rec "\n" > out; inrec = 0; next }
        inrec { rec = rec "\n" $0; if ($0 ~ /\/native\/(engine|binding)\/[A-Za-z]+\.(cc|h):/) keep = 1 }
    ' "$logs"/asan.* 2>/dev/null || true
    if [[ -s $logs/addon-leaks.txt ]]; then
        echo "asan-check: leaks allocated through native/ (${logs#"$root"/}/addon-leaks.txt):"
        grep -E "^(Direct|Indirect) leak of" "$logs/addon-leaks.txt" | sort | uniq -c | sed 's/^/    /'
        status=1
    else
        total=$(cat "$logs"/asan.* 2>/dev/null | grep -cE "^(Direct|Indirect) leak of" || true)
        echo "asan-check: no leak passes through native/ ($total leak records elsewhere: node, V8, libvips, tools)"
    fi
fi

loaded=$(grep -c . "$LLAMA_VLM_ASAN_PROBE" 2>/dev/null || true)
strays=$(grep -vF "\"filename\":\"$addon\",\"asan\":true" "$LLAMA_VLM_ASAN_PROBE" 2>/dev/null || true)
if [[ -n $strays ]]; then
    echo "asan-check: a process loaded another addon or ran without ASan:"
    while IFS= read -r line; do echo "    $line"; done <<<"$strays"
    ((status)) || status=3
fi
processes=$(cut -d, -f1 "$LLAMA_VLM_ASAN_PROBE" 2>/dev/null | sort -u | grep -c . || true)
echo "asan-check: build/asan/llama-vlm.node loaded ${loaded:-0} time(s) in ${processes:-0} process(es), each with the ASan runtime"

if ((status == 0 && tests != 0)); then status=2; fi
case $status in
    0) echo "asan-check: CLEAN ($pass pass)" ;;
    1) echo "asan-check: FINDINGS ($pass pass): see above" ;;
    2) echo "asan-check: no ASan report, but the tests failed (vitest exit status $tests)" ;;
    3) echo "asan-check: part of the suite did not run on the ASan build" ;;
esac
exit $status
