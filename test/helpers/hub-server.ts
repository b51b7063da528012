/**
 * A local stand-in for the Hugging Face Hub: a real node:http server on 127.0.0.1 (port 0) answering the requests
 * llama-vlm makes, with the Hub's shapes:
 * - `GET /api/models/{owner}/{name}/tree/{revision}?recursive=…` (what @huggingface/hub's listFiles calls): a JSON
 *   array of `{ type, oid, size, path, lfs?: { oid, size, pointerSize } }`; 404 with X-Error-Code RepoNotFound or
 *   RevisionNotFound;
 * - `HEAD|GET /{owner}/{name}/resolve/{revision}/{path}`: X-Repo-Commit, ETag, and for LFS files X-Linked-Etag,
 *   X-Linked-Size and a 302 to `/lfs/{sha256}` (the Hub's CDN redirect); small files are served directly; 404 with
 *   X-Error-Code EntryNotFound;
 * - `GET /lfs/{sha256}` and `GET /files/{name}` (a plain URL): the bytes, with Accept-Ranges, Content-Length, ETag
 *   and single-range requests (206 / 416).
 * It records every request, and can be told to drop the connection at a byte offset, to flip a byte in transit,
 * and to send slowly.
 */
import { createHash } from "node:crypto";
import http from "node:http";
import type { AddressInfo } from "node:net";

export interface HubFile {
    path: string;
    data: Buffer;
    /** Stored with Git LFS (sha256 published). Default: true for .gguf files. */
    lfs?: boolean;
    /** The size the listing claims, when it must differ from the data (a file too large for the disk). */
    listedSize?: number;
}

export interface HubRequest {
    method: string;
    path: string;
    range: string | undefined;
    authorization: string | undefined;
    status: number;
}

interface Fault {
    /** The file's path in its repository. */
    file: string;
    offset: number;
    /** Requests it still applies to. */
    times: number;
}

interface Served {
    data: Buffer;
    sha256: string;
    gitOid: string;
    lfs: boolean;
    path: string;
    listedSize: number;
}

const gitOid = (data: Buffer) => createHash("sha1").update(`blob ${data.length}\0`).update(data).digest("hex");

export class HubServer {
    readonly requests: HubRequest[] = [];
    /** Bytes per write and milliseconds between writes; undefined: all at once. */
    throttle: { bytes: number; delayMs: number } | undefined;
    private drops: Fault[] = [];
    private corruptions: Fault[] = [];
    private readonly repos = new Map<string, { commit: string; files: Served[] }>();

    private constructor(
        private readonly server: http.Server,
        readonly url: string,
    ) {}

    static async start(repos: Record<string, HubFile[]>): Promise<HubServer> {
        const server = http.createServer();
        await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
        const { port } = server.address() as AddressInfo;
        const hub = new HubServer(server, `http://127.0.0.1:${port}`);
        for (const [name, files] of Object.entries(repos)) hub.addRepo(name, files);
        server.on("request", (req, res) => hub.handle(req, res));
        return hub;
    }

    addRepo(name: string, files: HubFile[]): void {
        const served = files.map((f): Served => {
            const s: Served = {
                data: f.data,
                sha256: createHash("sha256").update(f.data).digest("hex"),
                gitOid: gitOid(f.data),
                lfs: f.lfs ?? f.path.endsWith(".gguf"),
                path: f.path,
                listedSize: f.listedSize ?? f.data.length,
            };
            return s;
        });
        const commit = createHash("sha1").update(name).update(String(files.length)).digest("hex");
        this.repos.set(name, { commit, files: served });
    }

    commitOf(repo: string): string {
        return this.repos.get(repo)!.commit;
    }

    /** Drops the connection once `offset` bytes of `file` have been sent, for the next `times` requests of it. */
    dropAt(file: string, offset: number, times = 1): void {
        this.drops.push({ file, offset, times });
    }

    /** Flips the byte at `offset` of `file` in transit, for the next `times` requests of it. */
    corrupt(file: string, offset: number, times = 1): void {
        this.corruptions.push({ file, offset, times });
    }

    clearFaults(): void {
        this.drops = [];
        this.corruptions = [];
        this.throttle = undefined;
    }

    /** GET requests that fetched bytes of `file` (its CDN URL, its resolve URL when not in LFS, or its plain URL). */
    fileGets(file: string): HubRequest[] {
        return this.requests.filter(
            (r) =>
                r.method === "GET" &&
                r.status < 300 &&
                (/^\/lfs\/[0-9a-f]{64}\//.test(r.path) ||
                    r.path.includes("/resolve/") ||
                    r.path.startsWith("/files/")) &&
                r.path.endsWith(`/${file}`),
        );
    }

    close(): Promise<void> {
        this.server.closeAllConnections();
        return new Promise((resolve) => this.server.close(() => resolve()));
    }

    private record(req: http.IncomingMessage, status: number): void {
        this.requests.push({
            method: req.method ?? "",
            path: decodeURIComponent(new URL(req.url ?? "/", this.url).pathname),
            range: req.headers.range,
            authorization: req.headers.authorization,
            status,
        });
    }

    private fail(req: http.IncomingMessage, res: http.ServerResponse, status: number, code: string, message: string) {
        this.record(req, status);
        res.writeHead(status, { "content-type": "application/json", "x-error-code": code });
        res.end(JSON.stringify({ error: message }));
    }

    private handle(req: http.IncomingMessage, res: http.ServerResponse): void {
        const url = new URL(req.url ?? "/", this.url);
        const parts = url.pathname.split("/").slice(1).map(decodeURIComponent);
        if (parts[0] === "api" && parts[1] === "models" && parts[4] === "tree") {
            const repo = this.repos.get(`${parts[2]}/${parts[3]}`);
            if (!repo) {
                this.fail(req, res, 404, "RepoNotFound", "Repository not found");
                return;
            }
            const revision = parts[5];
            if (revision !== "main" && revision !== repo.commit) {
                this.fail(req, res, 404, "RevisionNotFound", `Invalid rev id: ${revision}`);
                return;
            }
            this.record(req, 200);
            res.writeHead(200, { "content-type": "application/json" });
            res.end(
                JSON.stringify(
                    repo.files.map((f) => ({
                        type: "file",
                        oid: f.lfs
                            ? gitOid(Buffer.from(`version https://git-lfs.github.com/spec/v1\n${f.sha256}`))
                            : f.gitOid,
                        size: f.listedSize,
                        path: f.path,
                        ...(f.lfs ? { lfs: { oid: f.sha256, size: f.listedSize, pointerSize: 134 } } : {}),
                    })),
                ),
            );
            return;
        }
        if (parts[2] === "resolve") {
            const repo = this.repos.get(`${parts[0]}/${parts[1]}`);
            if (!repo) {
                this.fail(req, res, 404, "RepoNotFound", "Repository not found");
                return;
            }
            const revision = parts[3];
            if (revision !== "main" && revision !== repo.commit) {
                this.fail(req, res, 404, "RevisionNotFound", `Invalid rev id: ${revision}`);
                return;
            }
            const file = repo.files.find((f) => f.path === parts.slice(4).join("/"));
            if (!file) {
                this.fail(req, res, 404, "EntryNotFound", "Entry not found");
                return;
            }
            const headers: http.OutgoingHttpHeaders = {
                "x-repo-commit": repo.commit,
                etag: `"${file.lfs ? file.sha256 : file.gitOid}"`,
                "accept-ranges": "bytes",
            };
            if (file.lfs) {
                this.record(req, 302);
                res.writeHead(302, {
                    ...headers,
                    "x-linked-etag": `"${file.sha256}"`,
                    "x-linked-size": String(file.listedSize),
                    location: `/lfs/${file.sha256}/${parts[0]}/${parts[1]}/${file.path}`,
                    "content-length": "0",
                });
                res.end();
                return;
            }
            this.serveBytes(req, res, file, headers);
            return;
        }
        if (parts[0] === "lfs") {
            // /lfs/{sha256}/{owner}/{name}/{path}: the CDN address the resolve redirect gives.
            const repo = this.repos.get(`${parts[2]}/${parts[3]}`);
            const blob = repo?.files.find((f) => f.path === parts.slice(4).join("/") && f.sha256 === parts[1]);
            if (!blob) {
                this.fail(req, res, 404, "EntryNotFound", "Entry not found");
                return;
            }
            this.serveBytes(req, res, blob, { etag: `"${blob.sha256}"`, "accept-ranges": "bytes" });
            return;
        }
        if (parts[0] === "files") {
            const blob = [...this.repos.values()].flatMap((r) => r.files).find((b) => b.path === parts[1]);
            if (!blob) {
                this.fail(req, res, 404, "EntryNotFound", "Entry not found");
                return;
            }
            this.serveBytes(req, res, blob, { etag: `"${blob.sha256}"`, "accept-ranges": "bytes" });
            return;
        }
        this.fail(req, res, 404, "NotFound", "Not found");
    }

    private take(faults: Fault[], file: string, start: number, end: number): Fault | undefined {
        const fault = faults.find((f) => f.file === file && f.times > 0 && f.offset >= start && f.offset < end);
        if (fault) fault.times--;
        return fault;
    }

    private serveBytes(
        req: http.IncomingMessage,
        res: http.ServerResponse,
        file: Served,
        headers: http.OutgoingHttpHeaders,
    ): void {
        const total = file.data.length;
        let start = 0;
        let end = total;
        let status = 200;
        const range = req.headers.range;
        if (range) {
            const m = /^bytes=(\d+)-(\d*)$/.exec(range);
            const ifRange = req.headers["if-range"];
            if (m && (ifRange === undefined || ifRange === headers.etag)) {
                start = Number(m[1]);
                end = m[2] ? Math.min(total, Number(m[2]) + 1) : total;
                if (start >= total || start >= end) {
                    this.record(req, 416);
                    res.writeHead(416, { "content-range": `bytes */${total}` });
                    res.end();
                    return;
                }
                status = 206;
            }
        }
        this.record(req, status);
        res.writeHead(status, {
            ...headers,
            "content-type": "application/octet-stream",
            "content-length": String(end - start),
            ...(status === 206 ? { "content-range": `bytes ${start}-${end - 1}/${total}` } : {}),
        });
        if (req.method === "HEAD") {
            res.end();
            return;
        }
        let body = file.data.subarray(start, end);
        const corruption = this.take(this.corruptions, file.path, start, end);
        if (corruption) {
            body = Buffer.from(body);
            body[corruption.offset - start]! ^= 0xff;
        }
        const drop = this.take(this.drops, file.path, start, end);
        const stopAt = drop ? drop.offset - start : body.length;
        const send = (from: number) => {
            if (res.destroyed) return;
            const step = this.throttle?.bytes ?? body.length;
            const to = Math.min(stopAt, from + step);
            const more = to < stopAt;
            const next = () => {
                if (more) setTimeout(() => send(to), this.throttle?.delayMs ?? 0);
                else if (drop) res.socket?.destroy();
                else res.end();
            };
            if (to > from) res.write(body.subarray(from, to), next);
            else next();
        };
        send(0);
    }
}
