/**
 * Model references → local files. `resolveModel({ model, projector })` is the one entry: `loadModel`, every CLI
 * command that loads a model, and `llama-vlm pull` go through it. Local paths pass through untouched (nothing is
 * read); `hf:` and URL references are planned (which files, at which commit) and then fetched into the cache.
 *
 * Cache first: a reference whose files are all in the cache resolves with no request to the server (the commit a
 * branch pointed at when it was last resolved is remembered); `refresh: true` (what `pull` does) asks the Hub again.
 * Offline (`offline: true` or HF_HUB_OFFLINE=1), only the cache is used.
 */
import fs from "node:fs/promises";
import path from "node:path";
import { LlamaVlmError } from "../errors.js";
import {
    cachedCommit,
    cachedListing,
    cacheRoot,
    fileSize,
    isOffline,
    listCache,
    type RepoFile,
    repoDir,
    snapshotPath,
    storeResolution,
    urlPath,
    writeAtomic,
} from "./cache.js";
import { type DownloadProgress, download } from "./download.js";
import {
    authHeaders,
    commitOf,
    type HubAccess,
    hubAccess,
    listRepo,
    networkError,
    resolveUrl,
    statusError,
} from "./hub.js";
import { formatModelRef, type ModelRef, parseModelRef, quantOf } from "./ref.js";

export type { DownloadProgress };

/**
 * Quantisations taken, in this order, when an `hf:` reference names none: Q4_K_M (what llama.cpp's `-hf` takes
 * by default), then the other 4-bit ones, then Q5_K_M and Q8_0. A repository with a single GGUF model file gives
 * that file.
 */
export const DEFAULT_QUANTS = ["Q4_K_M", "Q4_K_S", "Q4_0", "IQ4_XS", "IQ4_NL", "Q4_1", "Q5_K_M", "Q8_0"] as const;
/** Projectors taken, in this order, when none is named. */
export const PROJECTOR_QUANTS = ["F16", "BF16", "F32", "Q8_0"] as const;

export interface ResolveOptions {
    /** Use only the cache (default: HF_HUB_OFFLINE=1). */
    offline?: boolean;
    /** Default: LLAMA_VLM_MODELS, else ~/.cache/llama-vlm/models. */
    cacheDir?: string;
    /** Ask the Hub which commit and files a reference means even when the cache could answer. Default false. */
    refresh?: boolean;
    /** Cancels listing and downloading; a download keeps what arrived and the next call resumes it. */
    signal?: AbortSignal;
    /** Called as bytes arrive (several times a second at most per 64 KiB chunk). */
    onProgress?: (progress: DownloadProgress) => void;
}

/** A file a reference resolves to. */
export interface ResolvedFile {
    role: "model" | "projector";
    /** The reference as given for this file, or the one discovery picked (`hf:owner/repo/mmproj-f16.gguf@commit`). */
    ref: string;
    /** Local path: the cache's copy, or the path given. */
    path: string;
    /** Bytes, when known (always, once fetched). */
    bytes: number | undefined;
    /** Whether the file is in the cache (or is a local path). */
    cached: boolean;
    /** What the download is checked against: "sha256" (LFS files), "git blob id", "size and ETag" (URLs), or "local". */
    verifiedBy: "sha256" | "git blob id" | "size and ETag" | "local";
    /** The quantisation label of its name, when it has one. */
    quant?: string;
    /** Further files of a split GGUF (`-00002-of-00003.gguf` …), fetched with it; llama.cpp opens them from the first. */
    shards?: ResolvedFile[];
    /** @internal */
    source?: {
        url: string;
        size?: number;
        sha256?: string;
        gitOid?: string;
        etag?: string;
        headers: Record<string, string>;
    };
}

export interface ResolvedModel {
    /** Local path of the text model. */
    model: string;
    /** Local path of the projector; absent for a text-only reference. */
    projector?: string;
    files: ResolvedFile[];
}

const isProjectorName = (file: string) => /mmproj/i.test(file.split("/").at(-1)!);
const isGguf = (file: string) => /\.gguf$/i.test(file);
const SHARD = /-(\d{5})-of-(\d{5})\.gguf$/i;

function plainFile(role: ResolvedFile["role"], file: string): ResolvedFile {
    return { role, ref: file, path: file, bytes: undefined, cached: true, verifiedBy: "local" };
}

interface RepoState {
    commit: string;
    files: RepoFile[];
}

/** One resolution: the repository listings it fetched, shared by model and projector. */
class Resolver {
    readonly root: string;
    readonly offline: boolean;
    readonly access: HubAccess;
    private readonly repos = new Map<string, Promise<RepoState>>();

    constructor(readonly options: ResolveOptions) {
        this.root = cacheRoot(options.cacheDir);
        this.offline = isOffline(options.offline);
        this.access = hubAccess();
    }

    notCached(ref: string, what: string): LlamaVlmError {
        return new LlamaVlmError(
            "NOT_CACHED",
            `${ref}: ${what} in the model cache (${this.root}), and offline mode is on (HF_HUB_OFFLINE=1 or offline: true). Fetch it first with the network: llama-vlm pull ${ref}`,
        );
    }

    /** The listing and commit of a repository at a revision, from the cache or (`online`) from the Hub. */
    repo(ref: Extract<ModelRef, { kind: "hf" }>, online: boolean): Promise<RepoState> {
        const key = `${online ? "online" : "cache"} ${ref.repo}@${ref.revision}`;
        let state = this.repos.get(key);
        if (state === undefined) {
            state = online ? this.fetchRepo(ref) : this.cachedRepo(ref);
            this.repos.set(key, state);
        }
        return state;
    }

    private async cachedRepo(ref: Extract<ModelRef, { kind: "hf" }>): Promise<RepoState> {
        const label = formatModelRef(ref);
        const commit = await cachedCommit(this.root, ref.repo, ref.revision);
        const files = commit ? await cachedListing(this.root, ref.repo, commit) : undefined;
        if (!commit || !files) throw this.notCached(label, `hf:${ref.repo}@${ref.revision} has never been resolved`);
        return { commit, files };
    }

    private async fetchRepo(ref: Extract<ModelRef, { kind: "hf" }>): Promise<RepoState> {
        const files = await listRepo(this.access, ref.repo, ref.revision, this.options.signal);
        const any = files.find((f) => isGguf(f.path)) ?? files[0];
        if (!any) {
            throw new LlamaVlmError(
                "MODEL_NOT_FOUND",
                `hf:${ref.repo}@${ref.revision} has no files; check the repository's name and revision`,
            );
        }
        const commit = await commitOf(this.access, ref.repo, ref.revision, any.path, this.options.signal);
        await storeResolution(this.root, ref.repo, ref.revision, commit, files);
        return { commit, files };
    }

    hfFile(
        role: ResolvedFile["role"],
        ref: Extract<ModelRef, { kind: "hf" }>,
        state: RepoState,
        file: RepoFile,
    ): ResolvedFile {
        const dest = snapshotPath(this.root, ref.repo, state.commit, file.path);
        const quant = quantOf(file.path);
        return {
            role,
            ref: `hf:${ref.repo}/${file.path}@${state.commit}`,
            path: dest,
            bytes: file.size,
            cached: false,
            verifiedBy: file.sha256 ? "sha256" : file.oid ? "git blob id" : "size and ETag",
            ...(quant ? { quant } : {}),
            source: {
                url: resolveUrl(this.access, ref.repo, state.commit, file.path),
                size: file.size,
                ...(file.sha256 ? { sha256: file.sha256 } : {}),
                ...(file.oid && !file.sha256 ? { gitOid: file.oid } : {}),
                headers: authHeaders(this.access),
            },
        };
    }

    /** The model file (with its shards) an hf: reference names or implies. */
    pickModel(ref: Extract<ModelRef, { kind: "hf" }>, state: RepoState): ResolvedFile {
        const label = formatModelRef(ref);
        const ggufs = state.files.filter((f) => isGguf(f.path) && !isProjectorName(f.path));
        const firsts = ggufs.filter((f) => !SHARD.test(f.path) || SHARD.exec(f.path)![1] === "00001");
        let chosen: RepoFile | undefined;
        if (ref.file !== undefined) {
            chosen = state.files.find((f) => f.path === ref.file);
            if (!chosen) {
                throw new LlamaVlmError(
                    "MODEL_NOT_FOUND",
                    `${label}: hf:${ref.repo} has no file "${ref.file}" at ${ref.revision}; its GGUF files: ${list(ggufs.map((f) => f.path))}`,
                );
            }
        } else if (firsts.length === 0) {
            throw new LlamaVlmError(
                "MODEL_NOT_FOUND",
                `${label}: hf:${ref.repo}@${ref.revision} has no GGUF model file (files: ${list(state.files.map((f) => f.path))})`,
            );
        } else if (ref.quant !== undefined) {
            const want = ref.quant.toUpperCase();
            chosen = firsts.find((f) => quantOf(f.path) === want);
            if (!chosen) {
                const available = [...new Set(firsts.map((f) => quantOf(f.path)).filter((q) => q !== undefined))];
                throw new LlamaVlmError(
                    "QUANT_NOT_FOUND",
                    `${label}: hf:${ref.repo} has no ${want} file. Available: ${list(available)}${available[0] ? ` (e.g. hf:${ref.repo}:${available[0]})` : ""}`,
                );
            }
        } else {
            for (const q of DEFAULT_QUANTS) {
                chosen = firsts.find((f) => quantOf(f.path) === q);
                if (chosen) break;
            }
            if (!chosen && firsts.length === 1) chosen = firsts[0];
            if (!chosen) {
                const available = [...new Set(firsts.map((f) => quantOf(f.path) ?? f.path))];
                throw new LlamaVlmError(
                    "QUANT_NOT_FOUND",
                    `${label}: hf:${ref.repo} has several GGUF files and none of ${DEFAULT_QUANTS.join(", ")}: name one, e.g. hf:${ref.repo}:${available[0]}. Available: ${list(available)}`,
                );
            }
        }
        const resolved = this.hfFile("model", ref, state, chosen);
        const shard = SHARD.exec(chosen.path);
        if (shard) {
            const stem = chosen.path.slice(0, chosen.path.length - shard[0].length);
            const rest = state.files.filter(
                (f) => f !== chosen && f.path.startsWith(stem) && SHARD.exec(f.path)?.[2] === shard[2],
            );
            resolved.shards = rest.map((f) => this.hfFile("model", ref, state, f));
        }
        return resolved;
    }

    /** The projector of a repository: the one named (`hf:owner/repo/mmproj-….gguf`), else F16 first. */
    pickProjector(ref: Extract<ModelRef, { kind: "hf" }>, state: RepoState, forModel?: string): ResolvedFile {
        const label = formatModelRef(ref);
        if (ref.file !== undefined) return this.pickModelAsProjector(ref, state);
        const projectors = state.files.filter((f) => isGguf(f.path) && isProjectorName(f.path));
        if (projectors.length === 0) {
            throw new LlamaVlmError(
                "PROJECTOR_NOT_FOUND",
                `${forModel ?? label}: hf:${ref.repo}@${ref.revision} has no projector (mmproj*.gguf), so the model would be text-only. ` +
                    `Name one from another repository or a local file: projector: "hf:owner/repo/mmproj-….gguf" (CLI: --projector hf:owner/repo/mmproj-….gguf)`,
            );
        }
        // A model reference's quantisation is the model's: its projector is picked by PROJECTOR_QUANTS.
        const named = forModel === undefined ? ref.quant?.toUpperCase() : undefined;
        const order = named ? [named] : PROJECTOR_QUANTS;
        for (const q of order) {
            const found = projectors.find((f) => quantOf(f.path) === q);
            if (found) return this.hfFile("projector", ref, state, found);
        }
        if (named) {
            throw new LlamaVlmError(
                "QUANT_NOT_FOUND",
                `${label}: hf:${ref.repo} has no ${named} projector. Available: ${list(projectors.map((f) => f.path))}`,
            );
        }
        return this.hfFile("projector", ref, state, projectors[0]!);
    }

    private pickModelAsProjector(ref: Extract<ModelRef, { kind: "hf" }>, state: RepoState): ResolvedFile {
        const chosen = state.files.find((f) => f.path === ref.file);
        if (!chosen) {
            const projectors = state.files.filter((f) => isProjectorName(f.path)).map((f) => f.path);
            throw new LlamaVlmError(
                "PROJECTOR_NOT_FOUND",
                `${formatModelRef(ref)}: hf:${ref.repo} has no file "${ref.file}"; its projectors: ${list(projectors)}`,
            );
        }
        return this.hfFile("projector", ref, state, chosen);
    }

    async mark(file: ResolvedFile): Promise<ResolvedFile> {
        const size = await fileSize(file.path);
        file.cached = size !== undefined && (file.bytes === undefined || size === file.bytes);
        for (const s of file.shards ?? []) await this.mark(s);
        return file;
    }

    async url(role: ResolvedFile["role"], url: string): Promise<ResolvedFile> {
        const dest = urlPath(this.root, url);
        const size = await fileSize(dest);
        const base: ResolvedFile = {
            role,
            ref: url,
            path: dest,
            bytes: size,
            cached: size !== undefined,
            verifiedBy: "size and ETag",
        };
        if (base.cached) return base;
        if (this.offline) throw this.notCached(url, "the file is not");
        let response: Response;
        try {
            response = await fetch(url, {
                method: "HEAD",
                ...(this.options.signal ? { signal: this.options.signal } : {}),
            });
        } catch (error) {
            if (this.options.signal?.aborted) throw new LlamaVlmError("ABORTED", `Resolving ${url} was aborted`);
            throw networkError(`Resolving ${url}`, error);
        }
        if (response.status >= 400) throw statusError(url, response.status, null, this.access);
        const length = Number(response.headers.get("content-length") ?? Number.NaN);
        const etag = response.headers.get("etag") ?? undefined;
        return {
            ...base,
            bytes: Number.isFinite(length) ? length : undefined,
            source: {
                url,
                ...(Number.isFinite(length) ? { size: length } : {}),
                ...(etag ? { etag } : {}),
                headers: {},
            },
        };
    }

    /** Both files of a hf: reference, cache first (unless refreshing), then from the Hub. */
    async hfPair(
        ref: Extract<ModelRef, { kind: "hf" }>,
        projector: ModelRef | undefined,
    ): Promise<{ model: ResolvedFile; projector?: ResolvedFile }> {
        const pick = async (online: boolean) => {
            const state = await this.repo(ref, online);
            const model = await this.mark(this.pickModel(ref, state));
            let proj: ResolvedFile | undefined;
            if (projector === undefined) proj = await this.mark(this.pickProjector(ref, state, formatModelRef(ref)));
            return { model, projector: proj };
        };
        if (!this.options.refresh || this.offline) {
            try {
                const cached = await pick(false);
                const all = [
                    cached.model,
                    ...(cached.model.shards ?? []),
                    ...(cached.projector ? [cached.projector] : []),
                ];
                if (all.every((f) => f.cached) || this.offline) {
                    const missing = all.find((f) => !f.cached);
                    if (missing) throw this.notCached(formatModelRef(ref), `${missing.ref} is not`);
                    return cached;
                }
            } catch (error) {
                if (this.offline) throw error;
                // Not (wholly) cached: ask the Hub.
            }
        }
        return pick(true);
    }

    async single(role: ResolvedFile["role"], ref: ModelRef): Promise<ResolvedFile> {
        if (ref.kind === "path") return plainFile(role, ref.path);
        if (ref.kind === "url") return this.url(role, ref.url);
        const pick = async (online: boolean) => {
            const state = await this.repo(ref, online);
            return this.mark(role === "model" ? this.pickModel(ref, state) : this.pickProjector(ref, state));
        };
        if (!this.options.refresh || this.offline) {
            try {
                const cached = await pick(false);
                if (cached.cached && (cached.shards ?? []).every((s) => s.cached)) return cached;
                if (this.offline) throw this.notCached(formatModelRef(ref), `${cached.ref} is not`);
            } catch (error) {
                if (this.offline) throw error;
            }
        }
        return pick(true);
    }

    async fetch(file: ResolvedFile): Promise<void> {
        for (const f of [file, ...(file.shards ?? [])]) {
            if (f.cached || f.source === undefined) continue;
            if (this.offline) throw this.notCached(f.ref, "the file is not");
            const { source } = f;
            await download(
                {
                    url: source.url,
                    dest: f.path,
                    label: f.ref.startsWith("hf:")
                        ? f.ref.replace(/^hf:[^/]+\/[^/]+\//, "").replace(/@.*$/, "")
                        : path.basename(f.path),
                    ref: f.ref,
                    headers: source.headers,
                    ...(source.size !== undefined ? { size: source.size } : {}),
                    ...(source.sha256 ? { sha256: source.sha256 } : {}),
                    ...(source.gitOid ? { gitOid: source.gitOid } : {}),
                    ...(source.etag ? { etag: source.etag } : {}),
                },
                {
                    ...(this.options.signal ? { signal: this.options.signal } : {}),
                    ...(this.options.onProgress ? { onProgress: this.options.onProgress } : {}),
                },
            );
            if (f.ref === source.url) {
                await writeAtomic(
                    path.join(path.dirname(f.path), "url.json"),
                    `${JSON.stringify({ url: source.url, etag: source.etag ?? null, size: source.size ?? null })}\n`,
                );
            }
            f.cached = true;
            f.bytes = await fileSize(f.path);
        }
    }
}

/** A file as callers see it: without its download details (their headers carry HF_TOKEN). */
function publicFile({ source: _source, shards, ...file }: ResolvedFile): ResolvedFile {
    return { ...file, ...(shards ? { shards: shards.map(publicFile) } : {}) };
}

function list(items: readonly string[]): string {
    return items.length === 0 ? "none" : items.join(", ");
}

/**
 * Which files `model` (and `projector`) mean, without downloading anything: each with its local path in the cache
 * and whether it is there already. An `hf:` model without a `projector` gets its repository's projector.
 */
export async function planModel(
    options: { model: string; projector?: string | undefined } & ResolveOptions,
): Promise<ResolvedFile[]> {
    const files = await plan(new Resolver(options), options.model, options.projector);
    return files.map(publicFile);
}

async function plan(resolver: Resolver, model: string, projector: string | undefined): Promise<ResolvedFile[]> {
    const modelRef = parseModelRef(model);
    const projectorRef = projector === undefined ? undefined : parseModelRef(projector);
    if (modelRef.kind === "hf") {
        const pair = await resolver.hfPair(modelRef, projectorRef);
        const proj = pair.projector ?? (projectorRef ? await resolver.single("projector", projectorRef) : undefined);
        return proj ? [pair.model, proj] : [pair.model];
    }
    const files = [await resolver.single("model", modelRef)];
    if (projectorRef) files.push(await resolver.single("projector", projectorRef));
    return files;
}

/**
 * Resolves a model (and projector) reference to local files, downloading what the cache lacks. Local paths are
 * returned as given, unread. An `hf:` model without a `projector` gets its repository's projector (F16 first).
 */
export async function resolveModel(
    options: { model: string; projector?: string | undefined } & ResolveOptions,
): Promise<ResolvedModel> {
    const resolver = new Resolver(options);
    const files = await plan(resolver, options.model, options.projector);
    for (const f of files) await resolver.fetch(f);
    const projector = files.find((f) => f.role === "projector");
    return {
        model: files[0]!.path,
        ...(projector ? { projector: projector.path } : {}),
        files: files.map(publicFile),
    };
}

/** Every verified file in the model cache. */
export async function listCachedModels(options: { cacheDir?: string } = {}) {
    return listCache(cacheRoot(options.cacheDir));
}

/**
 * Deletes cached files: `hf:owner/repo` (the whole repository), `hf:owner/repo:Q4_K_M` (files of that
 * quantisation), `hf:owner/repo/file.gguf[@commit]` (that file), or a URL. Resolves with the paths deleted;
 * NOT_CACHED when there was nothing to delete.
 */
export async function removeCachedModel(ref: string, options: { cacheDir?: string } = {}): Promise<string[]> {
    const root = cacheRoot(options.cacheDir);
    const parsed = parseModelRef(ref);
    const removed: string[] = [];
    const rm = async (file: string) => {
        await fs.rm(file, { recursive: true, force: true });
        await fs.rm(`${file}.part`, { force: true });
        removed.push(file);
    };
    if (parsed.kind === "path") {
        throw new LlamaVlmError("INVALID_OPTION", `"${ref}" is a local path, not a cached reference (hf:… or a URL)`);
    } else if (parsed.kind === "url") {
        const file = urlPath(root, parsed.url);
        if ((await fileSize(file)) !== undefined || (await fileSize(`${file}.part`)) !== undefined)
            await rm(path.dirname(file));
    } else if (parsed.file === undefined && parsed.quant === undefined && !ref.includes("@")) {
        const dir = repoDir(root, parsed.repo);
        if (
            await fs.stat(dir).then(
                () => true,
                () => false,
            )
        )
            await rm(dir);
    } else {
        for (const entry of await listCache(root)) {
            const m = /^hf:([^/]+\/[^/]+)\/(.+)@([0-9a-f]{40})$/.exec(entry.ref);
            if (!m || m[1] !== parsed.repo) continue;
            const [, , file, commit] = m;
            if (ref.includes("@") && parsed.revision !== commit && !entry.revisions.includes(parsed.revision)) continue;
            if (parsed.file !== undefined && file !== parsed.file) continue;
            if (parsed.quant !== undefined && quantOf(file!) !== parsed.quant.toUpperCase()) continue;
            await rm(entry.path);
        }
    }
    if (removed.length === 0) {
        throw new LlamaVlmError(
            "NOT_CACHED",
            `Nothing in the model cache (${root}) matches ${ref}; llama-vlm models lists what is there`,
        );
    }
    return removed;
}
