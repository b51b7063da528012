/**
 * The Hugging Face Hub's HTTP API. The file listing goes through @huggingface/hub's `listFiles` (the tree API);
 * the commit a revision points at comes from the `resolve` endpoint's `X-Repo-Commit` header, as
 * huggingface_hub reads it. `HF_ENDPOINT` sets the base URL; `HF_TOKEN` is sent as a bearer token when set and is
 * never written into a message.
 */
import { LlamaVlmError } from "../errors.js";
import { isCommit, type RepoFile } from "./cache.js";

export const DEFAULT_ENDPOINT = "https://huggingface.co";

export interface HubAccess {
    endpoint: string;
    token?: string;
}

export function hubAccess(): HubAccess {
    const endpoint = (process.env.HF_ENDPOINT || DEFAULT_ENDPOINT).replace(/\/+$/, "");
    const token = process.env.HF_TOKEN || process.env.HUGGING_FACE_HUB_TOKEN || undefined;
    return { endpoint, ...(token ? { token } : {}) };
}

export function authHeaders(access: HubAccess): Record<string, string> {
    return access.token ? { authorization: `Bearer ${access.token}` } : {};
}

/** `https://…/owner/name/resolve/<revision>/<file>`. */
export function resolveUrl(access: HubAccess, repo: string, revision: string, file: string): string {
    const encodedFile = file.split("/").map(encodeURIComponent).join("/");
    return `${access.endpoint}/${repo}/resolve/${encodeURIComponent(revision)}/${encodedFile}`;
}

/** A network failure (no answer, connection reset) as NETWORK_ERROR; anything already typed passes through. */
export function networkError(what: string, error: unknown): LlamaVlmError {
    if (error instanceof LlamaVlmError) return error;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const reason = cause?.code ?? cause?.message ?? (error as Error).message ?? String(error);
    return new LlamaVlmError("NETWORK_ERROR", `${what}: ${reason}. Check the connection (or HF_ENDPOINT) and retry`, {
        cause: error,
    });
}

/** An HTTP error status of the Hub as a LlamaVlmError that says what to do. */
export function statusError(what: string, status: number, hubCode: string | null, access: HubAccess): LlamaVlmError {
    if (status === 401 || status === 403 || status === 404 || status === 410) {
        const detail =
            hubCode === "RevisionNotFound"
                ? "the revision does not exist"
                : hubCode === "EntryNotFound"
                  ? "the file does not exist at that revision"
                  : status === 404 || status === 410
                    ? "not found"
                    : "access denied";
        const hint = access.token
            ? "check the name; if the repository is gated, accept its terms on the Hub with the account of HF_TOKEN"
            : "check the name; a private or gated repository needs HF_TOKEN set to a token that may read it";
        return new LlamaVlmError("MODEL_NOT_FOUND", `${what}: ${detail} (HTTP ${status}); ${hint}`);
    }
    return new LlamaVlmError("NETWORK_ERROR", `${what}: the server answered HTTP ${status}; retry later`);
}

type HubModule = typeof import("@huggingface/hub");
let hubModule: Promise<HubModule> | undefined;
/** Imported on first use: loading llama-vlm does not load the Hub client. */
const hub = (): Promise<HubModule> => {
    hubModule ??= import("@huggingface/hub");
    return hubModule;
};

/** Every file of `repo` at `revision` (recursive), with sizes and the hashes the Hub publishes. */
export async function listRepo(
    access: HubAccess,
    repo: string,
    revision: string,
    signal?: AbortSignal,
): Promise<RepoFile[]> {
    const { listFiles, HubApiError } = await hub();
    const what = `Listing hf:${repo}@${revision} on ${access.endpoint}`;
    const files: RepoFile[] = [];
    try {
        for await (const entry of listFiles({
            repo: { type: "model", name: repo },
            revision: encodeURIComponent(revision),
            recursive: true,
            hubUrl: access.endpoint,
            // The token goes in here rather than as `accessToken`, which the client refuses unless it starts with
            // "hf_" (a self-hosted endpoint's tokens need not).
            fetch: (input, init) =>
                fetch(input, {
                    ...init,
                    headers: { ...(init?.headers as Record<string, string>), ...authHeaders(access) },
                    ...(signal ? { signal } : {}),
                }),
        })) {
            if (entry.type !== "file") continue;
            files.push({
                path: entry.path,
                size: entry.lfs?.size ?? entry.size,
                ...(entry.oid ? { oid: entry.oid } : {}),
                ...(entry.lfs?.oid ? { sha256: entry.lfs.oid } : {}),
            });
        }
    } catch (error) {
        if (signal?.aborted) throw new LlamaVlmError("ABORTED", `${what} was aborted`);
        if (error instanceof HubApiError) {
            const data = error.data as { error?: string } | undefined;
            // The Hub says "Invalid rev id: …" for a revision it does not know (X-Error-Code RevisionNotFound).
            const hubCode = /\brev(ision)?\b/i.test(data?.error ?? "") ? "RevisionNotFound" : null;
            throw statusError(`hf:${repo}@${revision}`, error.statusCode, hubCode, access);
        }
        throw networkError(what, error);
    }
    return files;
}

/** The commit `revision` points at now (a commit is itself): the `X-Repo-Commit` of a resolve request. */
export async function commitOf(
    access: HubAccess,
    repo: string,
    revision: string,
    file: string,
    signal?: AbortSignal,
): Promise<string> {
    if (isCommit(revision)) return revision;
    const url = resolveUrl(access, repo, revision, file);
    let response: Response;
    try {
        response = await fetch(url, {
            method: "HEAD",
            redirect: "manual",
            headers: authHeaders(access),
            ...(signal ? { signal } : {}),
        });
    } catch (error) {
        if (signal?.aborted) throw new LlamaVlmError("ABORTED", `Resolving hf:${repo}@${revision} was aborted`);
        throw networkError(`Resolving hf:${repo}@${revision}`, error);
    }
    if (response.status >= 400)
        throw statusError(
            `hf:${repo}/${file}@${revision}`,
            response.status,
            response.headers.get("x-error-code"),
            access,
        );
    const commit = response.headers.get("x-repo-commit");
    if (!commit || !isCommit(commit)) {
        throw new LlamaVlmError(
            "NETWORK_ERROR",
            `${access.endpoint} did not say which commit hf:${repo}@${revision} is (no X-Repo-Commit header): is HF_ENDPOINT a Hugging Face Hub?`,
        );
    }
    return commit;
}
