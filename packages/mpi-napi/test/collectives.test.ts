// Every operation on 2 and 4 ranks, on the world and on sub-communicators, checked against
// results computed here with plain loops.
import { beforeAll, describe, expect, test } from "vitest";
import { DTYPES, inputValue, type Results } from "./workers/fixtures.ts";
import { readResults, report, requireMpirun, runWorkers, tempDir } from "./helpers.ts";

const range = (n: number) => Array.from({ length: n }, (_, i) => i);
const inputs = (rank: number, length: number) => range(length).map((i) => inputValue(rank, i));

/** Element-wise reduction of equally long lists. */
function reduce(lists: number[][], op: "sum" | "max" | "min" | "avg"): number[] {
  return lists[0]!.map((_, i) => {
    const column = lists.map((list) => list[i]!);
    if (op === "max") return Math.max(...column);
    if (op === "min") return Math.min(...column);
    const sum = column.reduce((a, b) => a + b, 0);
    return op === "avg" ? sum / lists.length : sum;
  });
}

/** The world ranks of each sub-communicator the worker builds, in sub-communicator order. */
function gridMembers(size: number, rank: number): Record<string, number[]> {
  const all = range(size);
  const row = all.filter((r) => Math.floor(r / 2) === Math.floor(rank / 2));
  const col = all.filter((r) => r % 2 === rank % 2).reverse(); // key -rank, or listed that way
  return { rowSplit: row, colSplit: col, rowGroup: row, colGroup: col };
}

function expectedResults(size: number, rank: number): Results {
  const prev = (rank - 1 + size) % size;
  const ranks = range(size);
  const all = (length: number) => ranks.map((r) => inputs(r, length));
  const expected: Results = {};
  for (const dtype of DTYPES) {
    const ops = dtype.startsWith("Float")
      ? (["sum", "max", "min", "avg"] as const)
      : (["sum", "max", "min"] as const);
    for (const op of ops) expected[`allreduce.${op}.${dtype}`] = reduce(all(5), op);
    expected[`allreduceInto.max.${dtype}`] = reduce(all(5), "max");
    expected[`allreduceInto.send.${dtype}`] = inputs(rank, 5);
    expected[`allgather.${dtype}`] = all(3).flat();
    expected[`reduceScatter.sum.${dtype}`] = reduce(all(3 * size), "sum").slice(3 * rank, 3 * rank + 3);
    expected[`broadcast.${dtype}`] = inputs(size - 1, 4);
    expected[`sendrecv.${dtype}`] = inputs(prev, 4);
  }
  expected["subarray.allreduce"] = [...Array(4).fill(100), ...reduce(all(5), "sum"), ...Array(3).fill(100)];
  expected["allgather.inplace"] = all(3).flat();
  expected["sendRecv.subarray"] = [-9, -9, ...inputs(prev, 4), -9, -9, -9, -9];
  expected["isendIrecv.ring"] = inputs(prev, 6);
  expected["isendIrecv.done"] = [1, 1];

  const period = reduce(all(11), "sum"); // the iallreduce input repeats every 11 elements
  expected["iallreduce.overlap.head"] = range(22).map((i) => period[i % 11]!);
  expected["iallreduce.overlap.total"] = [range(1 << 20).reduce((total, i) => total + period[i % 11]!, 0)];
  expected["iallreduce.overlap.worked"] = [1];
  expected["iallreduce.avg"] = reduce(all(5), "avg");
  expected["ireduceScatter.avg"] = reduce(all(3 * size), "avg").slice(3 * rank, 3 * rank + 3);
  const fromPrev = inputs(prev, 13); // the big isend/irecv repeats every 13 elements
  expected["isendIrecv.overlap.head"] = range(26).map((i) => fromPrev[i % 13]!);
  expected["isendIrecv.overlap.total"] = [range(1 << 20).reduce((total, i) => total + fromPrev[i % 13]!, 0)];
  expected["isendIrecv.overlap.pendingAtFirst"] = [1];
  const mine = inputs(rank, 13);
  expected["isendIrecv.overlap.sentTotal"] = [range(1 << 20).reduce((total, i) => total + mine[i % 13]!, 0)];
  expected["gc.received.head"] = inputs(prev, 8);
  expected["gc.keepalive"] = [1, 1]; // alive while pending, collected once done

  for (const [name, members] of Object.entries(gridMembers(size, rank))) {
    const me = members.indexOf(rank);
    const n = members.length;
    expected[`${name}.shape`] = [me, n];
    expected[`${name}.allreduce`] = [
      members.reduce((s, r) => s + r + 1, 0),
      members.reduce((s, r) => s + 10 * (r + 1), 0),
    ];
    expected[`${name}.allgather`] = members;
    expected[`${name}.broadcast`] = [members[n - 1]! * 3];
    expected[`${name}.sendrecv`] = [members[(me - 1 + n) % n]!];
    expected[`${name}.iallreduce`] = [Math.max(...members)];
    expected[`${name}.allreduceInto.avg`] = [
      members.reduce((s, r) => s + r + 1, 0) / n,
      members.reduce((s, r) => s - 3 * r, 0) / n,
    ];
    expected[`${name}.reduceScatter`] = [2 * me, 2 * me + 1].map((j) =>
      members.reduce((s, r) => s + (r + 1) * (j + 1), 0),
    );
    const prevMember = members[(me - 1 + n) % n]!;
    if (n > 1) expected[`${name}.sendRecv`] = [prevMember, prevMember * prevMember];
    expected[`${name}.isendIrecv`] = [prevMember * 7];
  }
  expected["splitNull.isNull"] = [rank === 0 ? 1 : 0];
  if (rank !== 0) expected["splitNull.allreduce"] = [ranks.reduce((s, r) => s + r, 0)];
  return expected;
}

beforeAll(requireMpirun);

describe.each([2, 4])("collectives on %i ranks", (size) => {
  test("every operation, dtype and sub-communicator gives the expected result", () => {
    const dir = tempDir();
    const outcome = runWorkers(size, "collectives.ts", [dir], ["--expose-gc"]);
    expect(outcome.code, report(outcome)).toBe(0);
    for (const rank of range(size)) {
      const results = readResults<Results>(dir, rank);
      const expected = expectedResults(size, rank);
      expect(Object.keys(results).sort()).toEqual(Object.keys(expected).sort());
      for (const [name, values] of Object.entries(expected)) {
        expect(results[name], `rank ${rank}: ${name}`).toEqual(values);
      }
    }
  });
});
