import fs from "node:fs";
import http from "node:http";
import type { AddressInfo } from "node:net";
import os from "node:os";
import path from "node:path";
import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { init } from "./index.ts";

const steps = (file: string) =>
  fs
    .readFileSync(file, "utf8")
    .trim()
    .split("\n")
    .filter(Boolean)
    .map((l) => JSON.parse(l).step);

describe("wandb.init / log", () => {
  it("writes config.json and one metrics line per step; a new run starts empty", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wandb-"));
    try {
      const run = await init({ dir, name: "r", config: { lr: 1 } });
      run.log({ step: 1, loss: 2 });
      run.log({ step: 2, loss: 1.5 });
      expect(JSON.parse(fs.readFileSync(path.join(dir, "r", "config.json"), "utf8"))).toEqual({ lr: 1 });
      expect(steps(run.file)).toEqual([1, 2]);
      expect(steps((await init({ dir, name: "r", config: {} })).file)).toEqual([]);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it("a resumed run drops the steps after its checkpoint: none is logged twice", async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wandb-"));
    try {
      const first = await init({ dir, name: "r", config: {} });
      for (let s = 1; s <= 88; s++) first.log({ step: s, loss: 1 / s });
      fs.appendFileSync(first.file, '{"step": 89, "lo'); // the process was killed mid-line
      const resumed = await init({ dir, name: "r", config: {}, resumeStep: 50 });
      for (let s = 51; s <= 100; s++) resumed.log({ step: s, loss: 1 / s });
      expect(steps(resumed.file)).toEqual(Array.from({ length: 100 }, (_, i) => i + 1));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** A stand-in for api.wandb.ai on 127.0.0.1: records each request and answers what @wandb/sdk reads. */
async function fakeWandb({ upsertStatus = 200 } = {}) {
  const seen: { url: string; authorization?: string; body: any }[] = [];
  const server = http.createServer((req, res) => {
    let text = "";
    req.on("data", (chunk) => (text += chunk));
    req.on("end", () => {
      const body = text ? JSON.parse(text) : undefined;
      seen.push({ url: req.url ?? "", authorization: req.headers.authorization, body });
      res.setHeader("content-type", "application/json");
      let answer: unknown = {}; // the probe's GET / and the file_stream posts: any 200 will do
      if (body?.operationName === "Viewer") {
        answer = { data: { viewer: { id: "u1", entity: "tester", flags: "{}", teams: { edges: [] } } } };
      } else if (body?.operationName === "UpsertBucket") {
        res.statusCode = upsertStatus;
        const { name, displayName, project } = body.variables;
        const bucket = {
          id: "b1",
          name,
          displayName,
          project: { id: "p1", name: project, entity: { id: "e1", name: "tester" } },
        };
        answer = { data: { upsertBucket: { bucket, inserted: true } } };
      }
      res.end(JSON.stringify(answer));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const close = () => {
    server.closeAllConnections();
    return new Promise((resolve) => server.close(resolve));
  };
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, seen, close };
}

describe("--use_wandb", () => {
  const saved = { key: process.env.WANDB_API_KEY, url: process.env.WANDB_BASE_URL };
  let dir = "";
  let printed: string[] = [];
  beforeEach(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), "wandb-"));
    printed = [];
    vi.spyOn(console, "log").mockImplementation((...args) => void printed.push(args.join(" ")));
  });
  afterEach(() => {
    vi.restoreAllMocks();
    for (const [name, value] of [
      ["WANDB_API_KEY", saved.key],
      ["WANDB_BASE_URL", saved.url],
    ] as const) {
      if (value === undefined) delete process.env[name];
      else process.env[name] = value;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  });
  const local = () => `the metrics go to ${path.join(dir, "r", "metrics.jsonl")} and pnpm dashboard`;

  it("without WANDB_API_KEY: one line, and the run goes on with its local files", async () => {
    delete process.env.WANDB_API_KEY;
    const run = await init({ dir, name: "r", config: { lr: 1 }, use_wandb: true });
    run.log({ step: 1, loss: 2 });
    await run.finish();
    expect(printed).toEqual([`--use_wandb: WANDB_API_KEY is not set; ${local()}`]);
    expect(run.cloud).toBeUndefined();
    expect(steps(run.file)).toEqual([1]);
  });

  it("with a key but no service at WANDB_BASE_URL: one line, and the run goes on", async () => {
    const closed = await fakeWandb();
    await closed.close(); // its port is now closed
    process.env.WANDB_API_KEY = "k".repeat(40);
    process.env.WANDB_BASE_URL = closed.url;
    const run = await init({ dir, name: "r", config: {}, use_wandb: true });
    run.log({ step: 1, loss: 2 });
    await run.finish();
    expect(printed).toEqual([`--use_wandb: ${closed.url} is unreachable (ECONNREFUSED); ${local()}`]);
    expect(steps(run.file)).toEqual([1]);
  });

  it("with a service that does not answer within 5 s: one line, and the run goes on", async () => {
    const silent = http.createServer(() => {}); // takes the request, never answers
    await new Promise<void>((resolve) => silent.listen(0, "127.0.0.1", resolve));
    try {
      const url = `http://127.0.0.1:${(silent.address() as AddressInfo).port}`;
      process.env.WANDB_API_KEY = "k".repeat(40);
      process.env.WANDB_BASE_URL = url;
      const run = await init({ dir, name: "r", config: {}, use_wandb: true });
      run.log({ step: 1, loss: 2 });
      expect(printed).toEqual([`--use_wandb: ${url} is unreachable (no answer in 5 s); ${local()}`]);
      expect(steps(run.file)).toEqual([1]);
    } finally {
      silent.closeAllConnections();
      await new Promise((resolve) => silent.close(resolve));
    }
  });

  it("through @wandb/sdk: the run created in picotron_tutorial, its metrics streamed, finished", async () => {
    const wandb = await fakeWandb();
    try {
      const key = "k".repeat(40);
      process.env.WANDB_API_KEY = key;
      process.env.WANDB_BASE_URL = wandb.url;
      const config = { lr: 0.001, tp_size: 2, model: "SmolLM-360M" };
      const run = await init({ dir, name: "r", config, use_wandb: true });
      expect(run.cloud).toBeDefined();
      run.log({ step: 1, loss: 2 });
      run.log({ step: 2, loss: 1.5 });
      await run.finish();
      expect(run.cloud).toBeUndefined();
      expect(steps(run.file)).toEqual([1, 2]); // the local files as always

      const graphql = wandb.seen.filter((r) => r.url === "/graphql");
      expect(graphql.map((r) => r.body.operationName)).toEqual(["Viewer", "UpsertBucket"]);
      expect(
        graphql.every((r) => r.authorization === `Basic ${Buffer.from(`api:${key}`).toString("base64")}`),
      ).toBe(true);
      const created = graphql[1].body.variables;
      expect(created).toMatchObject({ project: "picotron_tutorial", entity: "tester", displayName: "r" });
      expect(JSON.parse(created.config)).toEqual(config);
      expect(printed).toEqual([
        `--use_wandb: logging to ${wandb.url}/tester/picotron_tutorial/runs/${created.name}`,
      ]);

      const stream = wandb.seen.filter(
        (r) => r.url === `/files/tester/picotron_tutorial/${created.name}/file_stream`,
      );
      const history = stream
        .flatMap((r) => r.body.files?.["wandb-history.jsonl"]?.content ?? [])
        .map((l: string) => JSON.parse(l));
      expect(history).toMatchObject([
        { step: 1, loss: 2, _step: 1 },
        { step: 2, loss: 1.5, _step: 2 },
      ]);
      expect(stream.at(-1)?.body).toEqual({ complete: true, exitcode: 0 }); // finish marks the run complete
    } finally {
      await wandb.close();
    }
  });

  it("a run the service refuses to create (403): one line, no crash, the run goes on", async () => {
    const wandb = await fakeWandb({ upsertStatus: 403 });
    try {
      process.env.WANDB_API_KEY = "k".repeat(40);
      process.env.WANDB_BASE_URL = wandb.url;
      const run = await init({ dir, name: "r", config: {}, use_wandb: true });
      run.log({ step: 1, loss: 2 });
      await run.finish();
      expect(run.cloud).toBeUndefined();
      expect(printed).toEqual([
        `--use_wandb: the W&B run could not start (Fatal HTTP error (403): GraphQL Error (Code: 403)); ${local()}`,
      ]);
      expect(steps(run.file)).toEqual([1]);
    } finally {
      await wandb.close();
    }
  });

  it("the service gone mid-run: said once, the W&B logging stops, training goes on", async () => {
    const wandb = await fakeWandb();
    process.env.WANDB_API_KEY = "k".repeat(40);
    process.env.WANDB_BASE_URL = wandb.url;
    const run = await init({ dir, name: "r", config: {}, use_wandb: true }).finally(wandb.close);
    expect(run.cloud).toBeDefined(); // started, and now its service is gone
    run.log({ step: 1, loss: 2 });
    await run.finish(); // the history it sends finds no one
    run.log({ step: 2, loss: 1.5 });
    const stopped = printed.filter((l) => l.startsWith("--use_wandb: logging to W&B stopped"));
    expect(stopped).toHaveLength(1);
    expect(stopped[0]).toMatch(/ECONNREFUSED/);
    expect(stopped[0]).toContain(local());
    expect(steps(run.file)).toEqual([1, 2]);
  });
});
