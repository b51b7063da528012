/**
 * Model references: what a user may write wherever a model or projector path goes.
 * - a local path (anything that is not one of the forms below);
 * - `hf:owner/repo[:quant|/path/file.gguf][@revision]`: a Hugging Face repository, a quantisation in it
 *   (`:Q4_K_M`, case-insensitive) or one file in it, at a branch, tag or commit (default `main`);
 * - `https://…/file.gguf` (or `http://`).
 */
import { LlamaVlmError } from "../errors.js";

export type ModelRef =
    | { readonly kind: "path"; readonly path: string }
    | {
          readonly kind: "hf";
          /** `owner/name`. */
          readonly repo: string;
          /** A quantisation label as written (`Q4_K_M`); compared case-insensitively. */
          readonly quant?: string;
          /** A file's path inside the repository. */
          readonly file?: string;
          /** Branch, tag or commit. Default "main". */
          readonly revision: string;
      }
    | { readonly kind: "url"; readonly url: string };

const REPO_PART = /^[A-Za-z0-9][A-Za-z0-9._-]*$/;
const QUANT = /^[A-Za-z0-9_]+$/;

function bad(ref: string, why: string): LlamaVlmError {
    return new LlamaVlmError(
        "INVALID_OPTION",
        `"${ref}" is not a model reference: ${why}. Expected hf:owner/repo[:quant|/file.gguf][@revision], an https:// URL or a local path`,
    );
}

/** True for the strings `parseModelRef` does not take as a local path. */
export function isRemoteRef(ref: string): boolean {
    return ref.startsWith("hf:") || /^https?:\/\//i.test(ref);
}

/** Parses a reference; refuses a malformed `hf:` or URL reference with INVALID_OPTION. */
export function parseModelRef(ref: string): ModelRef {
    if (/^https?:\/\//i.test(ref)) {
        let url: URL;
        try {
            url = new URL(ref);
        } catch {
            throw bad(ref, "the URL does not parse");
        }
        if (url.pathname.endsWith("/")) throw bad(ref, "the URL names a folder, not a file");
        return { kind: "url", url: url.href };
    }
    if (!ref.startsWith("hf:")) return { kind: "path", path: ref };
    let body = ref.slice(3);
    let revision = "main";
    const at = body.indexOf("@");
    if (at >= 0) {
        revision = body.slice(at + 1);
        body = body.slice(0, at);
        if (revision === "" || revision.includes("..") || /[\s:?#]/.test(revision))
            throw bad(ref, `"${revision}" is not a revision (a branch, tag or commit)`);
    }
    let quant: string | undefined;
    const colon = body.indexOf(":");
    if (colon >= 0) {
        quant = body.slice(colon + 1);
        body = body.slice(0, colon);
        if (!QUANT.test(quant)) throw bad(ref, `"${quant}" is not a quantisation label such as Q4_K_M`);
    }
    const parts = body.split("/");
    if (parts.length < 2 || !REPO_PART.test(parts[0]!) || !REPO_PART.test(parts[1]!))
        throw bad(ref, "the repository must be owner/name");
    const repo = `${parts[0]}/${parts[1]}`;
    let file: string | undefined;
    if (parts.length > 2) {
        file = parts.slice(2).join("/");
        if (quant !== undefined) throw bad(ref, "name a quantisation or a file, not both");
        if (parts.slice(2).some((p) => p === "" || p === "." || p === ".."))
            throw bad(ref, `"${file}" is not a file path inside the repository`);
    }
    return {
        kind: "hf",
        repo,
        revision,
        ...(quant !== undefined ? { quant } : {}),
        ...(file !== undefined ? { file } : {}),
    };
}

/** The reference written back as a string (what `models` lists and `models rm` takes). */
export function formatModelRef(ref: ModelRef): string {
    switch (ref.kind) {
        case "path":
            return ref.path;
        case "url":
            return ref.url;
        case "hf":
            return `hf:${ref.repo}${ref.quant ? `:${ref.quant}` : ""}${ref.file ? `/${ref.file}` : ""}${ref.revision === "main" ? "" : `@${ref.revision}`}`;
    }
}

/**
 * The quantisation label in a GGUF file name: `Qwen2.5-VL-3B-Instruct-Q4_K_M.gguf` → `Q4_K_M`,
 * `mmproj-model-f16.gguf` → `F16`. Undefined when the name carries none.
 */
export function quantOf(fileName: string): string | undefined {
    const base = fileName
        .split("/")
        .at(-1)!
        .replace(/\.gguf$/i, "");
    // Shards (`-00001-of-00003`) end the name; the label is before them.
    const stem = base.replace(/-\d{5}-of-\d{5}$/, "");
    const labels = stem.match(/(?<=^|[-_.])(?:I?Q\d(?:_[A-Za-z0-9]+)*|BF16|F16|F32|FP16|FP32)(?=$|[-_.])/gi);
    return labels?.at(-1)?.toUpperCase();
}
