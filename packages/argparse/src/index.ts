// Our argparse. A train script declares its flags one per line, as the Python's parser.add_argument calls:
//
//   const args = parse_args("Training script for LLaMA model", {
//     seq_len: { type: "int", default: 32, min: 1 },
//     pp_engine: { type: "str", default: "afab", choices: ["1f1b", "afab"] },
//   });
//
// and gets a typed object back (args.seq_len: number). Every value is checked before any work starts; a bad
// one ends the process with one line that names the flag, the value and what is allowed (exit code 1, no
// stack trace). The same goes for a UsageError thrown later by the script (a flag that does not fit the
// data or the model): the user's mistake is one line, an internal error keeps its stack.
import path from "node:path";
import yargs from "yargs";

/** "path": a string resolved to an absolute path against the folder the user ran the command from. */
export type ArgType = "int" | "float" | "str" | "path" | "bool";

export interface ArgSpec {
  type: ArgType;
  default?: number | string | boolean;
  /** Allowed values (str flags). */
  choices?: readonly string[];
  /** Smallest allowed value, inclusive (int, float). */
  min?: number;
  /** Values must be greater than this (float): `above: 0` is "a positive number". */
  above?: number;
  /** path: the folder must be writable (checked now, created if missing): output goes there later. */
  writable?: boolean;
  /** Another flag that must be given with this one (when this one is set or true). */
  requires?: string;
  help?: string;
}

type ValueOf<S> = S extends { type: "int" | "float" }
  ? number
  : S extends { type: "bool" }
    ? boolean
    : S extends { choices: readonly (infer C)[] }
      ? C
      : string;

/** A flag with a default (or a bool) always has a value; one without is undefined when not given. */
export type Parsed<O extends Record<string, ArgSpec>> = {
  [K in keyof O]: O[K] extends { default: unknown } | { type: "bool" }
    ? ValueOf<O[K]>
    : ValueOf<O[K]> | undefined;
};

/** A mistake of the user's (a flag, a file, a size that does not fit): printed as one line, exit code 1. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Ends the process with the user's mistake in one line. */
export function exitWithUsageError(message: string): never {
  console.error(`error: ${message}`);
  process.exit(1);
}

let handlerInstalled = false;
/** From now on a UsageError that nobody catches is printed as one line (others keep their stack). */
export function installUsageErrorHandler(): void {
  if (handlerInstalled) return;
  handlerInstalled = true;
  const onError = (err: unknown) => {
    if (err instanceof UsageError || (err instanceof Error && err.name === "UsageError")) {
      exitWithUsageError(err.message);
    }
    console.error(err);
    process.exit(1);
  };
  process.on("uncaughtException", onError);
  process.on("unhandledRejection", onError);
}

/** The reason a value is not allowed for a flag, or null when it is. */
export function checkValue(name: string, spec: ArgSpec, value: unknown): string | null {
  const flag = `--${name}`;
  if (spec.type === "int" || spec.type === "float") {
    const v = value as number;
    if (typeof v !== "number" || Number.isNaN(v) || !Number.isFinite(v))
      return `${flag} needs a number, got ${JSON.stringify(value)}`;
    if (spec.type === "int" && !Number.isInteger(v)) return `${flag} must be an integer, got ${v}`;
    if (spec.min !== undefined && v < spec.min)
      return spec.type === "int" && spec.min === 1
        ? `${flag} must be a positive integer, got ${v}`
        : `${flag} must be >= ${spec.min}, got ${v}`;
    if (spec.above !== undefined && !(v > spec.above))
      return spec.above === 0
        ? `${flag} must be a positive number, got ${v}`
        : `${flag} must be > ${spec.above}, got ${v}`;
  }
  if (spec.type === "str" && spec.choices && !spec.choices.includes(value as string))
    return `${flag} must be one of ${spec.choices.join(", ")}, got ${JSON.stringify(value)}`;
  return null;
}

/**
 * Parses argv (default: this process's) against the declared flags. `pnpm --filter stepN train -- --flag`
 * passes the "--" through: it is dropped so the flags parse as flags. A flag given twice keeps its last
 * value (as argparse); a flag that needs a value and has none is an error (never its default silently).
 * A bad flag throws a UsageError, which the handler installed here prints as one line.
 */
export function parse_args<const O extends Record<string, ArgSpec>>(
  description: string,
  options: O,
  argv: string[] = process.argv.slice(2),
): Parsed<O> {
  installUsageErrorHandler();
  const rest = argv[0] === "--" ? argv.slice(1) : argv;
  const yargsOptions: Record<string, Record<string, unknown>> = {};
  for (const [name, spec] of Object.entries(options)) {
    yargsOptions[name] = {
      type:
        spec.type === "bool" ? "boolean" : spec.type === "int" || spec.type === "float" ? "number" : "string",
      default: spec.default,
      describe: spec.help,
      // str with choices: listed in --help; the check below gives the one-line error
      ...(spec.choices ? { choices: spec.choices } : {}),
      ...(spec.type === "bool" ? {} : { requiresArg: true }),
    };
  }
  const parsed = yargs(rest)
    .parserConfiguration({ "duplicate-arguments-array": false })
    .scriptName("train")
    .usage(description)
    .options(yargsOptions)
    .strict()
    .help()
    .version(false)
    .fail((msg, err) => {
      // yargs says "Not enough arguments following: seq_len": name the flag as the user typed it
      const missing = /^Not enough arguments following: (\S+)$/.exec(msg ?? "");
      throw new UsageError(missing ? `--${missing[1]} needs a value` : (err?.message ?? msg));
    })
    .parseSync() as Record<string, unknown>;
  for (const [name, spec] of Object.entries(options)) {
    const value = parsed[name];
    if (value === undefined) continue;
    const problem = checkValue(name, spec, value);
    if (problem) throw new UsageError(problem);
  }
  const out: Record<string, unknown> = {};
  // pnpm runs a script inside its package and says in INIT_CWD where the user was: paths are the user's
  const cwd = process.env.INIT_CWD ?? process.cwd();
  for (const [name, spec] of Object.entries(options)) {
    const value = parsed[name];
    out[name] = spec.type === "path" && typeof value === "string" ? path.resolve(cwd, value) : value;
    if (spec.requires && value !== undefined && value !== false && parsed[spec.requires] === undefined)
      throw new UsageError(`--${name} needs --${spec.requires}`);
  }
  // output folders last: a wrong value above is reported without creating anything
  for (const [name, spec] of Object.entries(options))
    if (spec.writable && typeof out[name] === "string") ensureWritableDir(`--${name}`, out[name] as string);
  return out as Parsed<O>;
}

import { ensureWritableDir } from "./paths.ts";
export { ensureWritableDir };
