/** Types of scripts/fuzz-schemas.mjs for the tests that import it. */
export function randomSchema(seed: number, index: number): Record<string, unknown>;
export function schemaProblems(value: unknown, schema: Record<string, unknown>, at?: string): string[];
