// Seeded random small JSON schemas, and a checker of a value against one: for the fuzzing of grammar-constrained
// output (test/model/fast-forward.test.ts). The schemas use what llama.cpp's converter supports and bound every
// output (string lengths, integer ranges, item counts), so that a generation under one always ends.
import { Rng } from "./script-fixtures.mjs";

const WORDS = ["red", "green", "blue", "tablet", "daily", "oral", "mg", "none", "high", "low", "active", "x"];

function leaf(rng) {
    switch (rng.int(0, 5)) {
        case 0:
            return { type: "string", maxLength: rng.int(1, 12) };
        case 1: {
            const n = rng.int(1, 4);
            const values = new Set();
            while (values.size < n) values.add(rng.pick(WORDS));
            return { type: "string", enum: [...values] };
        }
        case 2: {
            const minimum = rng.int(-20, 50);
            return { type: "integer", minimum, maximum: minimum + rng.int(0, 500) };
        }
        case 3:
            return { type: "boolean" };
        case 4:
            return { enum: [rng.pick(WORDS), rng.int(0, 9), null] };
        default:
            return { const: rng.pick(WORDS) };
    }
}

function node(rng, depth) {
    const kind = depth >= 2 ? 0 : rng.int(0, 3);
    if (kind <= 1) return leaf(rng);
    if (kind === 2) return { type: "array", items: node(rng, depth + 1), minItems: 0, maxItems: rng.int(1, 3) };
    return object(rng, depth + 1);
}

function object(rng, depth) {
    const n = rng.int(1, 3);
    const properties = {};
    for (let i = 0; i < n; i++) properties[`${rng.pick(WORDS)}${i}`] = node(rng, depth);
    return { type: "object", properties, required: Object.keys(properties), additionalProperties: false };
}

/** Schema `index` of `seed`: an object of one to three properties, nested at most two deep. */
export function randomSchema(seed, index) {
    return object(new Rng(seed, `schema ${index}`), 0);
}

/** The problems of `value` against a schema from randomSchema (empty when it validates). */
export function schemaProblems(value, schema, at = "$") {
    const problems = [];
    const fail = (what) => problems.push(`${at}: ${what} (got ${JSON.stringify(value)})`);
    if ("const" in schema) {
        if (value !== schema.const) fail(`not ${JSON.stringify(schema.const)}`);
        return problems;
    }
    if (schema.enum !== undefined) {
        if (!schema.enum.some((v) => v === value)) fail(`not one of ${JSON.stringify(schema.enum)}`);
        return problems;
    }
    switch (schema.type) {
        case "string":
            if (typeof value !== "string") fail("not a string");
            else if ([...value].length > schema.maxLength) fail(`longer than ${schema.maxLength}`);
            break;
        case "integer":
            if (!Number.isInteger(value)) fail("not an integer");
            else if (value < schema.minimum || value > schema.maximum)
                fail(`not in ${schema.minimum}..${schema.maximum}`);
            break;
        case "boolean":
            if (typeof value !== "boolean") fail("not a boolean");
            break;
        case "array":
            if (!Array.isArray(value)) fail("not an array");
            else if (value.length > schema.maxItems) fail(`more than ${schema.maxItems} items`);
            else for (const [i, v] of value.entries()) problems.push(...schemaProblems(v, schema.items, `${at}[${i}]`));
            break;
        case "object": {
            if (typeof value !== "object" || value === null || Array.isArray(value)) {
                fail("not an object");
                break;
            }
            const keys = Object.keys(schema.properties);
            for (const k of Object.keys(value)) if (!keys.includes(k)) fail(`has the property ${k} the schema forbids`);
            for (const k of keys) {
                if (!(k in value)) fail(`misses ${k}`);
                else problems.push(...schemaProblems(value[k], schema.properties[k], `${at}.${k}`));
            }
            break;
        }
        default:
            fail(`unknown schema ${JSON.stringify(schema)}`);
    }
    return problems;
}
