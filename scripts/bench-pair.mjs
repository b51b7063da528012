// The shape-true Qwen2.5-VL-3B pair the benchmark scripts run on (synthetic weights: speed does not depend on
// weight values), written once into .cache/models. Compiles dist/ first.
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

export const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "..");

/** @returns {Promise<{ model: string, projector: string }>} */
export async function benchPair() {
    execFileSync("npm", ["run", "compile"], { cwd: root, stdio: "ignore" });
    const { writeModelPair } = await import(path.join(root, "dist", "synth", "index.js"));
    const dir = path.join(root, ".cache", "models", "qwen2.5-vl-3b-seed0-q4_0");
    const manifest = path.join(dir, "pair.json");
    if (fs.existsSync(manifest)) return JSON.parse(fs.readFileSync(manifest, "utf8"));
    process.stderr.write("[bench] writing the synthetic Qwen2.5-VL-3B pair (≈3 GB, once)\n");
    const pair = await writeModelPair({ family: "qwen2.5-vl", size: "3b", seed: 0, quant: "q4_0", outDir: dir });
    fs.writeFileSync(manifest, JSON.stringify({ model: pair.model, projector: pair.projector }));
    return { model: pair.model, projector: pair.projector };
}
