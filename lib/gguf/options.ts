/** Throws for option names outside `allowed`, suggesting the closest one (catches typos such as "chunkElement"). */
export function rejectUnknownOptions(options: object, allowed: readonly string[], what: string): void {
    if (typeof options !== "object" || options === null) throw new TypeError(`Expected ${what} to be an object`);
    for (const key of Object.keys(options)) {
        if (allowed.includes(key)) continue;
        const closest = allowed.reduce(
            (best, name) => {
                const d = editDistance(key.toLowerCase(), name.toLowerCase());
                return d < best.d ? { name, d } : best;
            },
            { name: "", d: Number.POSITIVE_INFINITY },
        );
        const hint = closest.d <= 3 ? ` (did you mean "${closest.name}"?)` : "";
        throw new TypeError(`Unknown option "${key}" in ${what}${hint}; known: ${allowed.join(", ")}`);
    }
}

function editDistance(a: string, b: string): number {
    let prev = Array.from({ length: b.length + 1 }, (_, j) => j);
    for (let i = 1; i <= a.length; i++) {
        const row = [i];
        for (let j = 1; j <= b.length; j++) {
            row[j] = Math.min(prev[j]! + 1, row[j - 1]! + 1, prev[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
        }
        prev = row;
    }
    return prev[b.length]!;
}
