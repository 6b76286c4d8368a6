// Printing from several ranks. Each call writes its text and newline in one write, so a
// line is never cut by another rank's output (given the launcher's relay, see output.ts).
// Ranks print only when asked: a step usually logs from one rank.
import { format } from "node:util";
import { worldRank } from "./env.ts";

/** Prints a line (formatted like console.log, without colors) when `condition` holds. */
export function printIf(condition: boolean, ...args: unknown[]): void {
  if (condition) process.stdout.write(`${format(...args)}\n`);
}

/** Prints a line from the job's rank 0 only. */
export function log0(...args: unknown[]): void {
  printIf(worldRank() === 0, ...args);
}
