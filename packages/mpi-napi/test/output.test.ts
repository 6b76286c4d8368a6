// The relay that puts the ranks' lines back together from mpirun's --tag-output stream.
import { expect, test } from "vitest";
import { LineRelay } from "../src/output.ts";

/** Feeds `chunks` to a relay and returns each write it made. */
function relay(chunks: string[]): string[] {
  const writes: string[] = [];
  const lineRelay = new LineRelay((text) => writes.push(text.toString("utf8")));
  for (const chunk of chunks) lineRelay.push(Buffer.from(chunk, "utf8"));
  lineRelay.end();
  return writes;
}

test("chunks cut mid-line and interleaved across ranks come out as whole lines", () => {
  // What mpirun printed when rank 1's chunk ended in the middle of a line.
  const stream = "[1,1]<stdout>:one-a\n[1,1]<stdout>:one-b part[1,0]<stdout>:zero-a\n[1,1]<stdout>: two\n";
  expect(relay([stream]).join("")).toBe("one-a\nzero-a\none-b part two\n");
});

test("a tag split between two reads is still recognized, wherever the cut falls", () => {
  const stream = "[1,0]<stdout>:alpha beta[1,12]<stdout>:twelve\n[1,0]<stdout>: gamma\n";
  for (let cut = 0; cut <= stream.length; cut++) {
    expect(relay([stream.slice(0, cut), stream.slice(cut)]).join(""), `cut at ${cut}`).toBe(
      "twelve\nalpha beta gamma\n",
    );
  }
});

test("mpirun's own messages (untagged) pass through", () => {
  const stream = "[1,0]<stderr>:[rank 0] Error: x\n-----\nMPI_ABORT was invoked\n-----\n";
  expect(relay([stream]).join("")).toBe("[rank 0] Error: x\n-----\nMPI_ABORT was invoked\n-----\n");
});

test("brackets in the ranks' own text are not taken for tags", () => {
  const stream = "[1,0]<stdout>:step [3/10] loss 1.5\n[1,0]<stdout>:[a,b] [\n";
  expect(relay([stream]).join("")).toBe("step [3/10] loss 1.5\n[a,b] [\n");
});

test("what is left at the end is passed on, and UTF-8 split between chunks survives", () => {
  const bytes = Buffer.from("[1,0]<stdout>:température", "utf8");
  const writes: Buffer[] = [];
  const lineRelay = new LineRelay((text) => writes.push(text));
  const cut = bytes.indexOf(0xa9); // the second byte of "é"
  lineRelay.push(bytes.subarray(0, cut));
  lineRelay.push(bytes.subarray(cut));
  expect(writes).toHaveLength(0); // no newline yet: nothing is written
  lineRelay.end();
  expect(Buffer.concat(writes).toString("utf8")).toBe("température");
});
