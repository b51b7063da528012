/** Where the CLI writes, so that tests can run commands in-process and read what they print. */
export interface CliIo {
    readonly stdout: CliStream;
    readonly stderr: CliStream;
}

export interface CliStream {
    write(text: string): unknown;
    /** True for a terminal: progress bars are drawn only there. */
    readonly isTTY?: boolean;
    /** Terminal width in characters, when known. */
    readonly columns?: number;
}

export const processIo: CliIo = { stdout: process.stdout, stderr: process.stderr };

/** Thrown by a command that has printed what it had to say and ends with a specific exit code. */
export class CliExit extends Error {
    constructor(readonly exitCode: number) {
        super(`exit ${exitCode}`);
    }
}

/** `1536` → `"1.5 KB"`, `1.8e9` → `"1.80 GB"` (decimal units, as file managers and `ls -h --si` show). */
export function formatBytes(bytes: number): string {
    const units = ["B", "KB", "MB", "GB", "TB"];
    let value = bytes;
    let unit = 0;
    while (value >= 1000 && unit < units.length - 1) {
        value /= 1000;
        unit++;
    }
    if (unit === 0) return `${bytes} B`;
    return `${value.toFixed(value < 10 ? 2 : value < 100 ? 1 : 0)} ${units[unit]}`;
}

/** `3` → `"3"`: the amounts of a progress bar that counts things rather than bytes. */
export const formatCount = (n: number): string => String(n);

export interface ProgressBarOptions {
    /** How `done` and `total` are written. Default `formatBytes`; `formatCount` for a number of things. */
    readonly format?: (amount: number) => string;
    /** Redraws a second at the most. Default 10. */
    readonly fps?: number;
}

/**
 * A one-line progress bar redrawn in place (`\r`), at most `fps` times a second: `███░░  60%  3 / 5 images`.
 * Only for terminals: callers print plain lines when the stream is not a TTY.
 */
export class ProgressBar {
    private lastDraw = 0;
    private drawn = false;
    private readonly format: (amount: number) => string;
    private readonly fps: number;

    /** `label` follows the amounts: a file name for bytes, the things counted (`"images"`) for a count. */
    constructor(
        private readonly stream: CliStream,
        private readonly label: string,
        options: ProgressBarOptions = {},
    ) {
        this.format = options.format ?? formatBytes;
        this.fps = options.fps ?? 10;
    }

    /** `detail` (e.g. a rate and an ETA) is written after the label. */
    update(done: number, total: number, detail = ""): void {
        const now = Date.now();
        if (done < total && now - this.lastDraw < 1000 / this.fps) return;
        this.lastDraw = now;
        const fraction = total > 0 ? Math.min(1, done / total) : 1;
        const tail = `${this.label}${detail ? `  ${detail}` : ""}`;
        const width = Math.max(10, Math.min(40, (this.stream.columns ?? 80) - tail.length - 30));
        const filled = Math.round(fraction * width);
        const bar = `${"█".repeat(filled)}${"░".repeat(width - filled)}`;
        const percent = `${Math.floor(fraction * 100)}`.padStart(3);
        this.stream.write(`\r${bar} ${percent}%  ${this.format(done)} / ${this.format(total)} ${tail}\x1b[K`);
        this.drawn = true;
    }

    /** Erases the bar, leaving the cursor at the start of an empty line. */
    clear(): void {
        if (this.drawn) this.stream.write("\r\x1b[K");
        this.drawn = false;
    }
}
