/**
 * The clinical extraction preset: a prompt and a JSON schema (patient demographics, conditions,
 * medications) enforced by grammar, so every output parses and validates; and per-field confidence
 * from the generated tokens' probabilities.
 */
import type { TokenProbability } from "./context.js";

export const DEFAULT_EXTRACT_PROMPT = "Extract demographic, clinical disease and medication information";

export const CLINICAL_PROMPT =
    "Extract the patient's demographics (name, age, sex), the clinical conditions or diagnoses, and every " +
    "medication with its dose, route, frequency and duration from this document. Answer with JSON only.";

// Bounded lengths keep every grammar-conforming output inside a 4096-token context, so generation always
// ends with a closed, valid object.
const text = (maxLength: number) => ({ type: "string", maxLength });

export const CLINICAL_SCHEMA = {
    type: "object",
    properties: {
        patient: {
            type: "object",
            properties: {
                name: text(48),
                age: { type: "integer", minimum: 0, maximum: 130 },
                sex: { type: "string", enum: ["female", "male", "other", "unknown"] },
            },
            required: ["name", "age", "sex"],
            additionalProperties: false,
        },
        conditions: { type: "array", items: text(48), maxItems: 6 },
        medications: {
            type: "array",
            maxItems: 6,
            items: {
                type: "object",
                properties: {
                    name: text(32),
                    dose: text(16),
                    route: text(16),
                    frequency: text(24),
                    duration: text(16),
                },
                required: ["name", "dose", "route", "frequency", "duration"],
                additionalProperties: false,
            },
        },
    },
    required: ["patient", "conditions", "medications"],
    additionalProperties: false,
} as const;

export interface ClinicalRecord {
    patient: { name: string; age: number; sex: "female" | "male" | "other" | "unknown" };
    conditions: string[];
    medications: { name: string; dose: string; route: string; frequency: string; duration: string }[];
}

/** Checks a parsed value against CLINICAL_SCHEMA; returns the problems (empty when valid). */
export function validateClinical(value: unknown): string[] {
    const problems: string[] = [];
    const isObj = (v: unknown): v is Record<string, unknown> =>
        typeof v === "object" && v !== null && !Array.isArray(v);
    const str = (v: unknown, where: string, max: number) => {
        if (typeof v !== "string") problems.push(`${where} is not a string`);
        else if ([...v].length > max) problems.push(`${where} is longer than ${max} characters`);
    };
    if (!isObj(value)) return ["the output is not an object"];
    const p = value.patient;
    if (!isObj(p)) problems.push("patient is missing");
    else {
        str(p.name, "patient.name", 48);
        if (!Number.isInteger(p.age) || (p.age as number) < 0 || (p.age as number) > 130)
            problems.push("patient.age is not 0..130");
        if (!["female", "male", "other", "unknown"].includes(p.sex as string))
            problems.push("patient.sex is not allowed");
    }
    if (!Array.isArray(value.conditions) || value.conditions.length > 6)
        problems.push("conditions is not an array of ≤ 6");
    else for (const [i, c] of value.conditions.entries()) str(c, `conditions[${i}]`, 48);
    if (!Array.isArray(value.medications) || value.medications.length > 6)
        problems.push("medications is not an array of ≤ 6");
    else {
        for (const [i, m] of value.medications.entries()) {
            if (!isObj(m)) {
                problems.push(`medications[${i}] is not an object`);
                continue;
            }
            for (const [k, max] of [
                ["name", 32],
                ["dose", 16],
                ["route", 16],
                ["frequency", 24],
                ["duration", 16],
            ] as const) {
                str(m[k], `medications[${i}].${k}`, max);
            }
        }
    }
    return problems;
}

/**
 * Confidence of each leaf value of a JSON output: the lowest probability among the tokens that wrote
 * it (a field is as uncertain as its least certain token). Keys are JSON paths such as
 * "patient.name" or "medications[0].dose". Needs the per-token probabilities of the chosen tokens.
 */
export function fieldConfidence(
    text: string,
    tokenTexts: readonly string[],
    probs: readonly TokenProbability[][],
    tokens: readonly number[],
): Record<string, number> {
    // Character offset at which each token starts.
    const starts: number[] = [];
    let at = 0;
    for (const t of tokenTexts) {
        starts.push(at);
        at += t.length;
    }
    const tokenProb = (i: number) => probs[i]?.find((p) => p.token === tokens[i])?.probability ?? 0;
    const spanConfidence = (from: number, to: number) => {
        let min = 1;
        for (let i = 0; i < starts.length; i++) {
            const s = starts[i]!;
            const e = s + tokenTexts[i]!.length;
            if (e > from && s < to) min = Math.min(min, tokenProb(i));
        }
        return min;
    };
    const out: Record<string, number> = {};
    for (const [p, from, to] of leafSpans(text)) out[p] = spanConfidence(from, to);
    return out;
}

/** [path, start, end] of every leaf value (string, number, boolean, null) in a JSON text. */
export function leafSpans(text: string): Array<[string, number, number]> {
    const spans: Array<[string, number, number]> = [];
    let i = 0;
    const ws = () => {
        while (i < text.length && /\s/.test(text[i]!)) i++;
    };
    const readString = (): string => {
        const start = i;
        i++;
        while (i < text.length && text[i] !== '"') i += text[i] === "\\" ? 2 : 1;
        i++;
        return JSON.parse(text.slice(start, i)) as string;
    };
    const value = (path: string): void => {
        ws();
        const c = text[i];
        if (c === "{") {
            i++;
            ws();
            while (text[i] !== "}" && i < text.length) {
                ws();
                const key = readString();
                ws();
                i++; // ':'
                value(path ? `${path}.${key}` : key);
                ws();
                if (text[i] === ",") i++;
                ws();
            }
            i++;
        } else if (c === "[") {
            i++;
            let n = 0;
            ws();
            while (text[i] !== "]" && i < text.length) {
                value(`${path}[${n++}]`);
                ws();
                if (text[i] === ",") i++;
                ws();
            }
            i++;
        } else {
            const start = i;
            if (c === '"') readString();
            else while (i < text.length && !/[\s,}\]]/.test(text[i]!)) i++;
            spans.push([path, start, i]);
        }
    };
    value("");
    return spans;
}

/** Lower case, white space collapsed: how merged entries are compared. */
function sameKey(s: string): string {
    return s.trim().replace(/\s+/g, " ").toLowerCase();
}

/**
 * One record for a document from its pages' records, in page order. The rule: demographics are the first page's
 * whose patient name is not empty (the first page's when none has a name); conditions are the union,
 * deduplicated ignoring case and white space, first spelling kept, empty ones dropped; medications are the union, a medication being
 * a duplicate when all five fields match ignoring case and white space. The merged lists may be longer than one
 * page's schema allows (6).
 */
export function mergeClinical(records: readonly ClinicalRecord[]): ClinicalRecord {
    const patient = records.find((r) => r.patient.name.trim() !== "")?.patient ??
        records[0]?.patient ?? { name: "", age: 0, sex: "unknown" as const };
    const conditions: string[] = [];
    const seenConditions = new Set<string>();
    const medications: ClinicalRecord["medications"] = [];
    const seenMedications = new Set<string>();
    for (const r of records) {
        for (const c of r.conditions) {
            const key = sameKey(c);
            if (key === "" || seenConditions.has(key)) continue;
            seenConditions.add(key);
            conditions.push(c);
        }
        for (const m of r.medications) {
            const key = [m.name, m.dose, m.route, m.frequency, m.duration].map(sameKey).join("\n");
            if (seenMedications.has(key)) continue;
            seenMedications.add(key);
            medications.push(m);
        }
    }
    return { patient: { ...patient }, conditions, medications };
}
