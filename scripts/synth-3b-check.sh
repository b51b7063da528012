#!/usr/bin/env bash
# Writes the shape-true synthetic Qwen2.5-VL-3B pair with `llama-vlm synth`, checks the text model's size (within
# 10% of 1.8 GB) and the writer's peak RSS (under 1 GB), then runs the vendored llama-mtmd-cli on the pair with
# a generated image and checks that it generates 16 tokens. Takes a few minutes on a laptop-class CPU and needs
# ~3.1 GB of disk; a manual check, not part of CI.
#
#   scripts/synth-3b-check.sh [out-dir]        (default .cache/models/qwen2.5-vl-3b-check)
#
# Environment: THREADS (default: all cores), KEEP=1 keeps the model files afterwards.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
out="${1:-.cache/models/qwen2.5-vl-3b-check}"
threads="${THREADS:-$(nproc)}"
mkdir -p "$out"
fail=0
check() { # check <description> <test command...>
    local what="$1"
    shift
    if "$@"; then echo "PASS  $what"; else echo "FAIL  $what"; fail=1; fi
}

echo "== build: TypeScript (dist/) and llama.cpp tools"
npm run --silent compile
bin="$(node scripts/build-llama-tools.mjs --print-dir | tail -n 1)"

echo "== write the pair"
/usr/bin/time -v -o "$out/synth.time" node dist/cli/main.js synth --family qwen2.5-vl --size 3b --out "$out"
model="$out/qwen2.5-vl-3b-q4_0-seed0.gguf"
projector="$out/mmproj-qwen2.5-vl-3b-f16-seed0.gguf"
text_bytes=$(stat -c %s "$model")
projector_bytes=$(stat -c %s "$projector")
write_rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/synth.time")
write_wall=$(awk -F'): ' '/Elapsed \(wall clock\)/ {print $2}' "$out/synth.time")

echo "== generate a 448x336 test image"
image="$out/gradient-448x336.png"
node --input-type=module -e '
import sharp from "sharp";
const [w, h] = [448, 336];
const px = Buffer.alloc(w * h * 3);
for (let y = 0; y < h; y++)
    for (let x = 0; x < w; x++) {
        const i = (y * w + x) * 3;
        px[i] = (x * 255) / w;
        px[i + 1] = (y * 255) / h;
        px[i + 2] = 128 + 60 * Math.sin((x + y) / 9);
    }
await sharp(px, { raw: { width: w, height: h, channels: 3 } }).png().toFile(process.argv[1]);
' "$image"

echo "== llama-mtmd-cli, 16 tokens, $threads threads"
set +e
/usr/bin/time -v -o "$out/mtmd.time" "$bin/llama-mtmd-cli" -m "$model" --mmproj "$projector" --image "$image" \
    -p "Describe the image." -n 16 --temp 0 -c 4096 --no-warmup -t "$threads" -lv 4 \
    >"$out/mtmd.stdout" 2>"$out/mtmd.stderr"
mtmd_rc=$?
set -e
words=$(tr -s ' \n' '\n\n' <"$out/mtmd.stdout" | grep -c .)
runs=$(sed -nE 's/.*[^t] eval time = .* \/ +([0-9]+) runs.*/\1/p' "$out/mtmd.stderr" | tail -n 1)
prompt_tokens=$(sed -nE 's/.*prompt eval time = .* \/ +([0-9]+) tokens.*/\1/p' "$out/mtmd.stderr" | tail -n 1)
mtmd_rss_kb=$(awk -F': ' '/Maximum resident set size/ {print $2}' "$out/mtmd.time")
mtmd_wall=$(awk -F'): ' '/Elapsed \(wall clock\)/ {print $2}' "$out/mtmd.time")

echo
echo "== figures"
printf 'text model      %s bytes (%s)\n' "$text_bytes" "$(numfmt --to=si "$text_bytes")B"
printf 'projector       %s bytes (%s)\n' "$projector_bytes" "$(numfmt --to=si "$projector_bytes")B"
printf 'synth           wall %s, peak RSS %s kB\n' "$write_wall" "$write_rss_kb"
printf 'llama-mtmd-cli  exit %s, wall %s, peak RSS %s kB, prompt %s tokens, %s decode runs\n' \
    "$mtmd_rc" "$mtmd_wall" "$mtmd_rss_kb" "${prompt_tokens:-?}" "${runs:-?}"
grep -E "image slice encoded|image decoded|eval time" "$out/mtmd.stderr" | sed 's/^/                /' || true
printf 'generated       %s\n' "$(tr -s '\n' ' ' <"$out/mtmd.stdout")"
echo

check "text model within 10% of 1.8 GB" test "$text_bytes" -ge 1620000000 -a "$text_bytes" -le 1980000000
check "peak RSS of the writer under 1 GB" test "$write_rss_kb" -lt 976562 # KiB
check "llama-mtmd-cli exit code 0" test "$mtmd_rc" -eq 0
check "16 generated tokens (16 words, 15 counted decode runs)" test "$words" -eq 16 -a "${runs:-0}" -eq 15

if [ "${KEEP:-0}" != 1 ]; then rm -f "$model" "$projector"; fi
exit "$fail"
