import { spawnSync } from "node:child_process";
import fs from "node:fs";
import os from "node:os";
import path from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadModel } from "../../lib/index.js";
import { loadNative, loadOutcome } from "../../lib/native.js";
import { tinyPair } from "../helpers/fixtures.js";
import { REPO_ROOT } from "../helpers/models.js";

// Where an application puts the package: Electron unpacks it out of app.asar into a folder under the application's
// own, whose name may hold spaces and non-ASCII letters, and installs it read-only (Program Files, /Applications, a
// squashfs). A copy of this package — dist/ and the addon this checkout loads, with its shared libraries — is placed
// under such paths and used from a child process, as the application would.

const nobody = 65534;
const asRoot = process.getuid?.() === 0;
let base: string;
let unpacked: string;
let modelDir: string;
let expected: string;

const request = { prompt: "<__media__>Describe the image.", temperature: 0, maxTokens: 8 };

/** The child's script: load the package at argv[2], run one greedy request, print which addon file it used. */
const script = `
const [pkg, model, projector] = process.argv.slice(2);
const { loadModel, setLogger, version } = await import(pkg);
setLogger(null);
const m = await loadModel({ model, projector });
const ctx = await m.createContext({ contextSize: 1024 });
const data = new Uint8Array(64 * 64 * 3).map((_, i) => (i * 7) & 255);
const r = await ctx.complete({ ...${JSON.stringify(request)}, images: [{ data, width: 64, height: 64 }] });
await m.dispose();
console.log(JSON.stringify({ text: r.text, file: version().file }));
`;

/** The addon file this process loaded. */
function loadedAddon(): string {
    loadNative();
    if (loadOutcome === undefined) throw new Error("the addon did not load in the test process");
    return loadOutcome.file;
}

/** Copies the addon this process loaded (the .node and, for a portable build, the shared libraries beside it). */
function copyAddon(toDir: string): string {
    const file = loadedAddon();
    const fromDir = path.dirname(file);
    fs.mkdirSync(toDir, { recursive: true });
    const portable = path.basename(path.dirname(fromDir)) === "prebuilds";
    for (const f of portable ? fs.readdirSync(fromDir) : [path.basename(file)]) {
        if (fs.statSync(path.join(fromDir, f)).isFile()) fs.copyFileSync(path.join(fromDir, f), path.join(toDir, f));
    }
    return path.join(toDir, path.basename(file));
}

/** Runs the script in a child (as an unprivileged user when this is root, so that read-only means read-only). */
function runApp(pkgDir: string, env: Record<string, string | undefined> = {}, unprivileged = false) {
    const entry = path.join(pkgDir, "dist", "index.js");
    const childEnv: Record<string, string | undefined> = { ...process.env, LLAMA_VLM_ADDON: undefined, ...env };
    const r = spawnSync(
        unprivileged && asRoot ? nodeForNobody() : process.execPath,
        [path.join(base, "app.mjs"), pathToFileURL(entry).href, ...modelFiles()],
        {
            cwd: base,
            encoding: "utf8",
            timeout: 120_000,
            env: childEnv as NodeJS.ProcessEnv,
            ...(unprivileged && asRoot ? { uid: nobody, gid: nobody } : {}),
        },
    );
    expect(r.status, `the application failed: ${r.error ?? ""} ${r.stderr}`).toBe(0);
    return JSON.parse(r.stdout.trim().split("\n").at(-1) ?? "{}") as { text: string; file: string };
}

/** This node, where another user can run it (it may sit in root's home, as a CI-installed Node version does). */
function nodeForNobody(): string {
    const copy = path.join(base, "bin", "node");
    if (!fs.existsSync(copy)) {
        fs.mkdirSync(path.dirname(copy), { recursive: true, mode: 0o755 });
        try {
            fs.linkSync(process.execPath, copy);
        } catch {
            fs.copyFileSync(process.execPath, copy);
        }
        fs.chmodSync(copy, 0o755);
    }
    return copy;
}

function modelFiles(): [string, string] {
    return [path.join(modelDir, "model.gguf"), path.join(modelDir, "mmproj.gguf")];
}

/** The packages `roots` need at run time, from this checkout's (flat) node_modules. */
function runtimeDependencies(roots: string[]): string[] {
    const found = new Set<string>();
    const queue = [...roots];
    for (let name = queue.pop(); name !== undefined; name = queue.pop()) {
        const manifest = path.join(REPO_ROOT, "node_modules", name, "package.json");
        if (found.has(name) || !fs.existsSync(manifest)) continue;
        found.add(name);
        const meta = JSON.parse(fs.readFileSync(manifest, "utf8")) as Record<
            string,
            Record<string, string> | undefined
        >;
        queue.push(...Object.keys({ ...meta.dependencies, ...meta.optionalDependencies }));
    }
    return [...found];
}

/** Every file under dir with its size and modification time. */
function snapshot(dir: string): string[] {
    return (fs.readdirSync(dir, { recursive: true }) as string[]).sort().map((f) => {
        const s = fs.lstatSync(path.join(dir, f));
        return `${f} ${s.size} ${s.mtimeMs}`;
    });
}

beforeAll(async () => {
    const pair = await tinyPair("qwen2.5-vl");
    base = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-install-"));
    fs.chmodSync(base, 0o755);
    fs.writeFileSync(path.join(base, "app.mjs"), script, { mode: 0o644 });
    const app = path.join(base, "My Äpp é", "resources");
    unpacked = path.join(app, "app.asar.unpacked", "node_modules", "llama-vlm");
    fs.mkdirSync(unpacked, { recursive: true });
    fs.cpSync(path.join(REPO_ROOT, "dist"), path.join(unpacked, "dist"), { recursive: true });
    fs.copyFileSync(path.join(REPO_ROOT, "package.json"), path.join(unpacked, "package.json"));
    // At the same place under the package as here: prebuilds/<platform>-<arch>/ or build/Release/.
    copyAddon(path.dirname(path.join(unpacked, path.relative(REPO_ROOT, loadedAddon()))));
    // The package's dependencies but its build tools, with theirs, beside it in the unpacked node_modules (as an
    // application installs them; sharp is unpacked too). Copies, not a link to this checkout: the read-only case runs
    // as another user, who may not reach the checkout.
    const meta = JSON.parse(fs.readFileSync(path.join(REPO_ROOT, "package.json"), "utf8")) as {
        dependencies: Record<string, string>;
    };
    const buildTools = new Set(["cmake-js", "node-addon-api", "node-gyp-build"]);
    for (const dep of runtimeDependencies(Object.keys(meta.dependencies).filter((d) => !buildTools.has(d)))) {
        fs.cpSync(path.join(REPO_ROOT, "node_modules", dep), path.join(unpacked, "..", dep), { recursive: true });
    }
    modelDir = path.join(base, "models é");
    fs.mkdirSync(modelDir);
    fs.copyFileSync(pair.model, path.join(modelDir, "model.gguf"));
    fs.copyFileSync(pair.projector, path.join(modelDir, "mmproj.gguf"));
    for (const dir of [path.join(base, "My Äpp é"), modelDir]) {
        for (const f of ["", ...(fs.readdirSync(dir, { recursive: true }) as string[])]) {
            const p = path.join(dir, f);
            if (!fs.lstatSync(p).isSymbolicLink()) fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o755 : 0o644);
        }
    }

    const model = await loadModel({ model: pair.model, projector: pair.projector });
    const ctx = await model.createContext({ contextSize: 1024 });
    const data = new Uint8Array(64 * 64 * 3).map((_, i) => (i * 7) & 255);
    expected = (await ctx.complete({ ...request, images: [{ data, width: 64, height: 64 }] })).text;
    await model.dispose();
});

afterAll(() => {
    if (base === undefined) return;
    for (const f of ["", ...(fs.readdirSync(base, { recursive: true }) as string[])]) {
        const p = path.join(base, f);
        if (!fs.lstatSync(p).isSymbolicLink()) fs.chmodSync(p, 0o755);
    }
    fs.rmSync(base, { recursive: true, force: true });
});

describe("installed under paths an application uses", () => {
    it("loads its addon from an unpacked folder whose path has spaces and non-ASCII letters, and completes a request", () => {
        const r = runApp(unpacked);
        expect(r.file.startsWith(unpacked), `loaded ${r.file}`).toBe(true);
        expect(r.text).toBe(expected);
    });

    it("LLAMA_VLM_ADDON takes an addon from a path with spaces and non-ASCII letters, the package having none", () => {
        const bare = path.join(base, "bare copy", "node_modules", "llama-vlm");
        fs.mkdirSync(bare, { recursive: true });
        fs.cpSync(path.join(unpacked, "dist"), path.join(bare, "dist"), { recursive: true });
        fs.copyFileSync(path.join(unpacked, "package.json"), path.join(bare, "package.json"));
        fs.symlinkSync(path.join(REPO_ROOT, "node_modules"), path.join(base, "node_modules"));
        const addon = copyAddon(path.join(base, "Addon folder é ü", "linux x64"));
        const r = runApp(bare, { LLAMA_VLM_ADDON: addon });
        expect(r.file).toBe(addon);
        expect(r.text).toBe(expected);
    });

    it("works from a read-only install folder and writes nothing into it", () => {
        const app = path.join(base, "My Äpp é");
        const before = snapshot(app);
        for (const f of ["", ...(fs.readdirSync(app, { recursive: true }) as string[])]) {
            const p = path.join(app, f);
            if (!fs.lstatSync(p).isSymbolicLink()) fs.chmodSync(p, fs.statSync(p).isDirectory() ? 0o555 : 0o444);
        }
        // As root, permissions do not stop a write: the child runs as nobody then.
        const r = runApp(unpacked, {}, true);
        expect(r.file.startsWith(unpacked), `loaded ${r.file}`).toBe(true);
        expect(r.text).toBe(expected);
        expect(snapshot(app)).toEqual(before);
    });
});
