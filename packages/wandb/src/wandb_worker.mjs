// The W&B side of one run (--use_wandb): the official JS client @wandb/sdk, in a thread of its own (index.ts
// says why). Asked by index.ts's CloudRun: { type: "log", metrics, step } and { type: "finish" }; answers
// { type: "started", url }, { type: "finished" } and { type: "error", reason }.
import { parentPort, workerData } from "node:worker_threads";
import wandb from "@wandb/sdk";

const post = (message) => parentPort.postMessage(message);
// The main thread ends this run on the first failure; each is said on one line (a GraphQL error's message
// carries the whole request and response as JSON: cut off).
const textOf = (e) => (e instanceof Error ? e.message : String(e));
const oneLine = (text) => text.split("\n")[0].replace(/:? *\{.*$/, "");
const fail = (e) => post({ type: "error", reason: oneLine(textOf(e)) });

// The SDK reports what fails (a refused request, a lost connection, retries given up) with console.error,
// and goes on without the data. It also throws where nothing catches it (a run it could not create, from a
// MessagePort listener): passed on the same way, so the reasons arrive in the order they happened.
console.error = (...args) => fail(args.map(textOf).join(""));
process.on("uncaughtException", fail);

const { project, name, config, apiKey, baseUrl } = workerData;
// wandb.init asks the service who the key belongs to (GraphQL viewer), creates the run (upsertBucket), and
// starts streaming the history to /files/<entity>/<project>/<run id>/file_stream every few seconds.
wandb.init({ project, name, config, settings: { apiKey, baseUrl, silent: true } }).then((run) => {
  post({ type: "started", url: run.url() });
  parentPort.on("message", (message) => {
    if (message.type === "log") run.log(message.metrics, message.step);
    // sends what is left of the history, then marks the run complete (exit code 0)
    else if (message.type === "finish") run.finish().then(() => post({ type: "finished" }), fail);
  });
}, fail);
