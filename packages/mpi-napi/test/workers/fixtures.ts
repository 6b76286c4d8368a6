// Shared by the workers and the tests: the inputs each rank starts from, and how results
// travel back to the test (one JSON file per rank).
import { writeFileSync } from "node:fs";
import { join } from "node:path";

export const DTYPES = ["Float32Array", "Float64Array", "Int32Array", "BigInt64Array"] as const;
export type DtypeName = (typeof DTYPES)[number];

/** Element i of rank `rank`'s input: small integers, so float sums are exact. */
export function inputValue(rank: number, i: number): number {
  return (((rank + 1) * (i + 3)) % 11) - 5;
}

/** What the collectives worker reports: named lists of numbers. */
export type Results = Record<string, number[]>;

/** What the errors worker reports: per case, the error's class name and message. */
export type ErrorResults = Record<string, [string, string]>;

export function writeResults(outDir: string, rank: number, results: Results | ErrorResults): void {
  writeFileSync(join(outDir, `rank${rank}.json`), JSON.stringify(results));
}
