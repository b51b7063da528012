/**
 * Finds stop strings in streamed text, across token boundaries, and holds back any tail that could be
 * the start of a stop string, so streamed text never shows part of one. Stop strings match exactly as
 * given (case and whitespace included).
 *
 * Public, for text streamed from elsewhere: a request's own `stop` strings are matched by the native engine
 * (native/engine/Finish.h), which ends the request on the decode step that produced one.
 */
export class StopMatcher {
    private readonly stops: string[];
    private held = "";
    private stoppedAt: string | undefined;

    constructor(stops: readonly string[]) {
        this.stops = stops.filter((s) => s.length > 0);
    }

    /** The stop string that matched, once one has. */
    get matched(): string | undefined {
        return this.stoppedAt;
    }

    /**
     * Feeds new text. Returns the text that is safe to show now; after a match, the text before the
     * stop string and `stopped: true` (the stop string itself is never returned).
     */
    push(text: string): { text: string; stopped: boolean } {
        if (this.stoppedAt !== undefined) return { text: "", stopped: true };
        const buffer = this.held + text;
        let first = -1;
        for (const stop of this.stops) {
            const at = buffer.indexOf(stop);
            if (at !== -1 && (first === -1 || at < first)) {
                first = at;
                this.stoppedAt = stop;
            }
        }
        if (first !== -1) {
            this.held = "";
            return { text: buffer.slice(0, first), stopped: true };
        }
        const keep = this.partialTail(buffer);
        this.held = buffer.slice(buffer.length - keep);
        return { text: buffer.slice(0, buffer.length - keep), stopped: false };
    }

    /** At the end of generation: the held-back text, which turned out not to be a stop string. */
    flush(): string {
        const rest = this.stoppedAt === undefined ? this.held : "";
        this.held = "";
        return rest;
    }

    /** Length of the longest suffix of `buffer` that is a proper prefix of some stop string. */
    private partialTail(buffer: string): number {
        let best = 0;
        for (const stop of this.stops) {
            for (let n = Math.min(stop.length - 1, buffer.length); n > best; n--) {
                if (buffer.endsWith(stop.slice(0, n))) {
                    best = n;
                    break;
                }
            }
        }
        return best;
    }
}
