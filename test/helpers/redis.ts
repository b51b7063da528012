/**
 * A real redis-server (the Debian package redis-server) for the queue tests, on a free loopback port with its own
 * temporary directory. A missing redis-server fails the test with a message that names the package.
 */

import { type ChildProcess, execFileSync, spawn } from "node:child_process";
import fs from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";

export interface RedisServer {
    readonly port: number;
    readonly url: string;
    readonly dir: string;
    /** Stops the server (SIGTERM: with persistence on, it writes its append-only file first) and waits for it. */
    stop(): Promise<void>;
    /** Starts it again on the same port and directory. */
    start(): Promise<void>;
    /** Stops it and removes its directory. */
    dispose(): Promise<void>;
    /** The server's output, for failure messages. */
    log(): string;
}

export function redisServerPath(): string {
    try {
        return execFileSync("sh", ["-c", "command -v redis-server"], { encoding: "utf8" }).trim();
    } catch {
        throw new Error(
            "redis-server not found: the queue tests need a real Redis; install the Debian package redis-server " +
                "(apt-get install -y redis-server; .ci/run does it)",
        );
    }
}

function freePort(): Promise<number> {
    return new Promise((resolve, reject) => {
        const server = net.createServer();
        server.on("error", reject);
        server.listen(0, "127.0.0.1", () => {
            const port = (server.address() as net.AddressInfo).port;
            server.close(() => resolve(port));
        });
    });
}

/** Resolves once the server answers PING, within `timeoutMs`. */
async function waitPing(port: number, timeoutMs: number, exited: () => boolean): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline && !exited()) {
        const ok = await new Promise<boolean>((resolve) => {
            const socket = net.connect(port, "127.0.0.1");
            let data = "";
            socket.setTimeout(500, () => socket.destroy());
            socket.on("connect", () => socket.write("PING\r\n"));
            socket.on("data", (d) => {
                data += d;
                if (data.includes("\r\n")) {
                    socket.destroy();
                    resolve(data.startsWith("+PONG"));
                }
            });
            socket.on("error", () => resolve(false));
            socket.on("close", () => resolve(false));
        });
        if (ok) return;
        await new Promise((r) => setTimeout(r, 50));
    }
    throw new Error(`redis-server on port ${port} did not answer PING within ${timeoutMs} ms`);
}

/**
 * Starts redis-server. `persist`: an append-only file (fsync every second, Redis's default; stop() is a clean shutdown,
 * which writes it all), for restart tests; otherwise nothing on disk. fsync on every write made a run take 5 times
 * longer on a busy disk.
 */
export async function startRedis(options: { persist?: boolean } = {}): Promise<RedisServer> {
    const bin = redisServerPath();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "llama-vlm-redis-"));
    const port = await freePort();
    let child: ChildProcess | undefined;
    let output = "";
    const args = [
        "--port",
        String(port),
        "--bind",
        "127.0.0.1",
        "--dir",
        dir,
        "--save",
        "",
        "--appendonly",
        options.persist ? "yes" : "no",
        "--daemonize",
        "no",
    ];
    const server: RedisServer = {
        port,
        url: `redis://127.0.0.1:${port}`,
        dir,
        async start() {
            const proc = spawn(bin, args, { stdio: ["ignore", "pipe", "pipe"] });
            child = proc;
            let exited = false;
            proc.on("exit", () => {
                exited = true;
            });
            proc.stdout!.on("data", (d) => (output += d));
            proc.stderr!.on("data", (d) => (output += d));
            try {
                await waitPing(port, 15_000, () => exited);
            } catch (err) {
                proc.kill("SIGKILL");
                throw new Error(`${(err as Error).message}; its output:\n${output}`);
            }
            if (exited) throw new Error(`redis-server exited at start; its output:\n${output}`);
        },
        async stop() {
            const proc = child;
            child = undefined;
            if (!proc || proc.exitCode !== null || proc.signalCode !== null) return;
            const exited = new Promise((r) => proc.once("exit", r));
            proc.kill("SIGTERM");
            const timer = setTimeout(() => proc.kill("SIGKILL"), 10_000);
            await exited;
            clearTimeout(timer);
        },
        async dispose() {
            await server.stop();
            fs.rmSync(dir, { recursive: true, force: true });
        },
        log: () => output,
    };
    await server.start();
    return server;
}
