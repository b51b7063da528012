/**
 * The model cache: `~/.cache/llama-vlm/models` (`LLAMA_VLM_MODELS` overrides). Only verified files are ever at
 * their final path; a download in progress is `<file>.part` next to it, with `<file>.lock` held by the process
 * writing it.
 *
 *   hf/<owner>/<name>/refs/<revision>               the commit the revision pointed at when last resolved
 *   hf/<owner>/<name>/listings/<commit>.json        the repository's file list at that commit (sizes, hashes)
 *   hf/<owner>/<name>/snapshots/<commit>/<file>     verified files
 *   url/<host>/<hash of the URL>/<file name>        files fetched by URL, with url.json (the URL, its ETag and size)
 */
import { createHash } from "node:crypto";
import fs from "node:fs/promises";
import os from "node:os";
import path from "node:path";

/** The cache folder: `options.cacheDir`, else `LLAMA_VLM_MODELS`, else `~/.cache/llama-vlm/models`. */
export function cacheRoot(cacheDir?: string): string {
    return path.resolve(
        cacheDir ?? process.env.LLAMA_VLM_MODELS ?? path.join(os.homedir(), ".cache", "llama-vlm", "models"),
    );
}

/** Offline: `options.offline`, else `HF_HUB_OFFLINE` set to 1/true/yes (as huggingface_hub reads it). */
export function isOffline(offline?: boolean): boolean {
    if (offline !== undefined) return offline;
    return /^(1|true|yes|on)$/i.test(process.env.HF_HUB_OFFLINE ?? "");
}

/** One file of a repository listing, as the Hub's tree API gives it. */
export interface RepoFile {
    path: string;
    size: number;
    /** Git blob id (sha1 of "blob <size>\0" + content). */
    oid?: string;
    /** sha256 of the content, for files stored with Git LFS. */
    sha256?: string;
}

export function repoDir(root: string, repo: string): string {
    return path.join(root, "hf", ...repo.split("/"));
}

export function snapshotPath(root: string, repo: string, commit: string, file: string): string {
    return path.join(repoDir(root, repo), "snapshots", commit, ...file.split("/"));
}

const refFile = (root: string, repo: string, revision: string) =>
    path.join(repoDir(root, repo), "refs", encodeURIComponent(revision));
const listingFile = (root: string, repo: string, commit: string) =>
    path.join(repoDir(root, repo), "listings", `${commit}.json`);

/** Writes `text` to `file` through a temporary name, so a reader never sees half of it. */
export async function writeAtomic(file: string, text: string): Promise<void> {
    await fs.mkdir(path.dirname(file), { recursive: true });
    const temp = `${file}.${process.pid}.${Math.random().toString(36).slice(2)}.tmp`;
    await fs.writeFile(temp, text);
    await fs.rename(temp, file);
}

async function readText(file: string): Promise<string | undefined> {
    try {
        return await fs.readFile(file, "utf8");
    } catch {
        return undefined;
    }
}

export const isCommit = (revision: string): boolean => /^[0-9a-f]{40}$/.test(revision);

/** The commit `revision` pointed at when it was last resolved (a commit is itself). */
export async function cachedCommit(root: string, repo: string, revision: string): Promise<string | undefined> {
    if (isCommit(revision)) return revision;
    return (await readText(refFile(root, repo, revision)))?.trim() || undefined;
}

export async function cachedListing(root: string, repo: string, commit: string): Promise<RepoFile[] | undefined> {
    const text = await readText(listingFile(root, repo, commit));
    if (text === undefined) return undefined;
    try {
        return JSON.parse(text) as RepoFile[];
    } catch {
        return undefined;
    }
}

export async function storeResolution(
    root: string,
    repo: string,
    revision: string,
    commit: string,
    files: readonly RepoFile[],
): Promise<void> {
    await writeAtomic(listingFile(root, repo, commit), `${JSON.stringify(files, null, 1)}\n`);
    if (!isCommit(revision)) await writeAtomic(refFile(root, repo, revision), `${commit}\n`);
}

/** Where a URL's file goes. */
export function urlPath(root: string, url: string): string {
    const u = new URL(url);
    const name = decodeURIComponent(u.pathname.split("/").at(-1) ?? "") || "file.gguf";
    const hash = createHash("sha256").update(url).digest("hex").slice(0, 16);
    return path.join(root, "url", u.host.replace(/[^A-Za-z0-9.-]/g, "_"), hash, name.replace(/[/\\]/g, "_"));
}

/** The size of a complete file at `file`, or undefined when there is none. */
export async function fileSize(file: string): Promise<number | undefined> {
    try {
        const s = await fs.stat(file);
        return s.isFile() ? s.size : undefined;
    } catch {
        return undefined;
    }
}

/** One entry of `listCachedModels()`. */
export interface CachedModel {
    /** `hf:owner/name/file@commit` or the URL. */
    ref: string;
    /** Absolute path of the verified file. */
    path: string;
    bytes: number;
    /** For hf: files, the revisions (branches, tags) that pointed at this commit when last resolved. */
    revisions: string[];
}

async function walk(dir: string): Promise<string[]> {
    let entries: import("node:fs").Dirent[];
    try {
        entries = await fs.readdir(dir, { withFileTypes: true });
    } catch {
        return [];
    }
    const out: string[] = [];
    for (const e of entries) {
        const p = path.join(dir, e.name);
        if (e.isDirectory()) out.push(...(await walk(p)));
        else if (e.isFile()) out.push(p);
    }
    return out;
}

/** Every verified file in the cache (partial downloads and locks are left out). */
export async function listCache(root: string): Promise<CachedModel[]> {
    const out: CachedModel[] = [];
    const hf = path.join(root, "hf");
    for (const owner of await safeReaddir(hf)) {
        for (const name of await safeReaddir(path.join(hf, owner))) {
            const repo = `${owner}/${name}`;
            const dir = repoDir(root, repo);
            const refs = new Map<string, string[]>();
            for (const r of await safeReaddir(path.join(dir, "refs"))) {
                const commit = (await readText(path.join(dir, "refs", r)))?.trim();
                if (commit) refs.set(commit, [...(refs.get(commit) ?? []), decodeURIComponent(r)]);
            }
            for (const commit of await safeReaddir(path.join(dir, "snapshots"))) {
                const base = path.join(dir, "snapshots", commit);
                for (const file of await walk(base)) {
                    if (isTransient(file)) continue;
                    const rel = path.relative(base, file).split(path.sep).join("/");
                    out.push({
                        ref: `hf:${repo}/${rel}@${commit}`,
                        path: file,
                        bytes: (await fileSize(file)) ?? 0,
                        revisions: refs.get(commit) ?? [],
                    });
                }
            }
        }
    }
    for (const file of await walk(path.join(root, "url"))) {
        if (isTransient(file) || path.basename(file) === "url.json") continue;
        const meta = await readText(path.join(path.dirname(file), "url.json"));
        let url = file;
        try {
            url = (JSON.parse(meta ?? "") as { url: string }).url;
        } catch {}
        out.push({ ref: url, path: file, bytes: (await fileSize(file)) ?? 0, revisions: [] });
    }
    return out.sort((a, b) => a.ref.localeCompare(b.ref));
}

const isTransient = (file: string) => /\.(part|lock|tmp)$/.test(file);

async function safeReaddir(dir: string): Promise<string[]> {
    try {
        return (await fs.readdir(dir)).sort();
    } catch {
        return [];
    }
}
