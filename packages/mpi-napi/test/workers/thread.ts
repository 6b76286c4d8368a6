// Run as a worker thread by errors.ts: MPI belongs to the main thread, so init() and
// finalize() must refuse here. Posts each one's error as [class name, message].
import { parentPort } from "node:worker_threads";
import { finalize, init } from "../../src/index.ts";

function attempt(action: () => unknown): [string, string] {
  try {
    action();
    return ["none", ""];
  } catch (error) {
    return error instanceof Error ? [error.constructor.name, error.message] : ["thrown", String(error)];
  }
}

parentPort!.postMessage({ "thread.init": attempt(init), "thread.finalize": attempt(finalize) });
