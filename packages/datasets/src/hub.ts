// The Hugging Face hub's address and how to tell a failure to reach it from an answer: shared by the datasets
// (parquet downloads) and by @picotron/transformers (tokenizers from the hub), as huggingface_hub is in Python.

/**
 * The folder the user ran the command from: relative paths in flags are theirs. (pnpm runs a package's
 * script inside the package and says where the user was in INIT_CWD.)
 */
export function userCwd(): string {
  return process.env.INIT_CWD ?? process.cwd();
}

/** The hub's address: HF_ENDPOINT (a mirror) or huggingface.co. */
export function hubEndpoint(): string {
  return (process.env.HF_ENDPOINT ?? "https://huggingface.co").replace(/\/+$/, "");
}

const NETWORK_CODES = new Set([
  "ECONNREFUSED",
  "ECONNRESET",
  "ENOTFOUND",
  "EAI_AGAIN",
  "ETIMEDOUT",
  "ENETUNREACH",
  "EHOSTUNREACH",
  "UND_ERR_CONNECT_TIMEOUT",
  "UND_ERR_SOCKET",
]);

/** True when the error (or one of its causes) is a failure to reach the server, not an answer from it. */
export function isNetworkError(err: unknown): boolean {
  for (let e: unknown = err; e instanceof Error; e = e.cause) {
    const code = (e as NodeJS.ErrnoException).code;
    if (e.message === "fetch failed" || e.name === "TimeoutError" || (code && NETWORK_CODES.has(code)))
      return true;
  }
  return false;
}

/** The innermost message of an error's cause chain (e.g. "connect ECONNREFUSED 127.0.0.1:9"). */
export function causeMessage(err: unknown): string {
  let e = err as Error;
  while (e.cause instanceof Error) e = e.cause;
  return e.message;
}
