// Misuse becomes TypeError or RangeError, MPI's failures become Errors with MPI's message,
// and a failing rank ends the whole job quickly.
import { beforeAll, expect, test } from "vitest";
import type { ErrorResults } from "./workers/fixtures.ts";
import { readResults, report, requireMpirun, runWorkers, tempDir } from "./helpers.ts";

beforeAll(requireMpirun);

const TYPE_ERRORS = [
  "dtype.uint8",
  "dtype.array",
  "dtype.mixed",
  "dtype.avgInt",
  "dtype.detached",
  "dtype.detachedIsend",
  "op.unknown",
  "rank.string",
  "wait.twice",
  "waitAll.waited",
  "waitAll.notRequest",
  "waitAll.notArray",
  "comm.freed",
  "comm.freedTwice",
  "comm.freeWorld",
  "finalize.pending",
  "after.allreduce",
  "after.sub",
  "after.isend",
  "after.world",
  "after.init",
  "thread.init",
  "thread.finalize",
];
const RANGE_ERRORS = [
  "length.allgather",
  "length.reduceScatter",
  "length.allreduceInto",
  "overlap.allreduceInto",
  "rank.send",
  "rank.negative",
  "rank.fraction",
  "rank.isend",
  "root.broadcast",
  "rank.createGroup",
  "rank.duplicate",
  "color.negative",
  "tag.negative",
  "self.send",
  "self.recv",
];
const NO_ERROR = ["test.afterWait", "finalize", "finalize.again", "waitAll.afterFinalize"];

test("wrong arguments and wrong states throw TypeError or RangeError, MPI failures Error", () => {
  const dir = tempDir();
  const outcome = runWorkers(2, "errors.ts", [dir]);
  expect(outcome.code, report(outcome)).toBe(0);
  for (const rank of [0, 1]) {
    const errors = readResults<ErrorResults>(dir, rank);
    for (const name of TYPE_ERRORS) expect(errors[name]?.[0], `rank ${rank}: ${name}`).toBe("TypeError");
    for (const name of RANGE_ERRORS) expect(errors[name]?.[0], `rank ${rank}: ${name}`).toBe("RangeError");
    for (const name of NO_ERROR) expect(errors[name], `rank ${rank}: ${name}`).toEqual(["none", ""]);
  }
  const receiver = readResults<ErrorResults>(dir, 1);
  expect(receiver["mpi.truncate"]).toEqual(["Error", expect.stringContaining("MPI_ERR_TRUNCATE")]);
  expect(receiver["recv.short"]).toEqual(["RangeError", "received 2 elements into a buffer of 4"]);
  expect(receiver["irecv.short"]).toEqual([
    "RangeError",
    "wait failed: received 2 elements into a buffer of 4",
  ]);
  expect(readResults<ErrorResults>(dir, 0)["thread.init"]![1]).toBe(
    "MPI can only be used from the main thread",
  );
  expect(readResults<ErrorResults>(dir, 0)["dtype.mixed"]![1]).toBe(
    "mixed dtypes: Float32Array and Float64Array",
  );
});

test.each([
  { ranks: 2, mode: "throw", message: "Error: boom on rank 1", code: 1 },
  { ranks: 4, mode: "throw", message: "Error: boom on rank 3", code: 1 },
  { ranks: 4, mode: "reject", message: "Error: rejected on rank 3", code: 1 },
  { ranks: 2, mode: "exit", message: "", code: 3 },
  { ranks: 4, mode: "abort", message: "", code: 4 },
])("a rank that fails ($mode) ends the $ranks-rank job quickly", ({ ranks, mode, message, code }) => {
  const outcome = runWorkers(ranks, "fail.ts", [mode]);
  expect(outcome.code, report(outcome)).toBe(code);
  expect(outcome.seconds).toBeLessThan(50); // a hang would be killed at 60 s; a busy machine is slower to abort
  if (message !== "") {
    const line = `[rank ${ranks - 1}] ${message}`;
    expect(outcome.stderr.split(line).length - 1, report(outcome)).toBe(1); // printed once
  }
});
