// Timeline traces (beyond the tutorial; torch.profiler's Chrome export): with --trace every rank records what
// it does and when — forward, backward, point-to-point sends/receives, all-reduces, the optimizer — and at
// the end rank 0 merges all ranks into one Chrome trace-event JSON (one track per rank) that opens in
// Perfetto or chrome://tracing. The pipeline's bubble is the empty space on each track. Off by default:
// span() then only runs fn.
import fs from "node:fs";
import path from "node:path";
import type { Comm } from "@picotron/mpi-napi";

/** A Chrome trace "complete" event: a span of `dur` µs starting at `ts` µs on track (pid, tid). */
export interface TraceEvent {
  name: string;
  cat: string;
  ph: "X";
  ts: number;
  dur: number;
  pid: number;
  tid: number;
  args: Record<string, number>;
}

/** Trace metadata: names and orders the tracks. */
interface TraceMetadata {
  name: "process_name" | "process_sort_index";
  ph: "M";
  pid: number;
  args: { name?: string; sort_index?: number };
}

export class Tracer {
  private events: TraceEvent[] | null = null;
  private origin = 0;
  private rank = 0;
  private trackName = "";
  /** The training step being traced (set by the loop), recorded on every span. */
  step = 0;

  get enabled(): boolean {
    return this.events !== null;
  }

  /** Starts recording; every rank of `world` calls it at once, naming its own track ("rank 5 (dp 1, tp 1)"). */
  start(world: Comm, trackName: string): void {
    this.rank = world.rank;
    this.trackName = trackName;
    this.events = [];
    // One time origin for all the ranks: the earliest rank's start, on the wall clock (timeOrigin + now()),
    // which the processes of one machine share exactly. (A barrier's exit is no common instant: a rank
    // that shares a core may leave it milliseconds after the others.)
    const start = new Float64Array([performance.timeOrigin + performance.now()]);
    world.allreduce(start, "min");
    this.origin = start[0]! - performance.timeOrigin; // in this process's performance.now() time
  }

  /** Runs fn and, when tracing, records it as a span of category `cat` (forward, backward, p2p, ...). */
  span<T>(name: string, cat: string, fn: () => T, args: Record<string, number> = {}): T {
    if (!this.events) return fn();
    const start = performance.now();
    try {
      return fn();
    } finally {
      const end = performance.now();
      this.events.push({
        name,
        cat,
        ph: "X",
        ts: (start - this.origin) * 1e3,
        dur: (end - start) * 1e3,
        pid: this.rank,
        tid: 0,
        args: { step: this.step, ...args },
      });
    }
  }

  /**
   * Gathers every rank's spans on rank 0, which writes them to `file` (collective: all ranks call it).
   * The JSON travels over MPI, so ranks on other machines need no shared file system.
   */
  write(world: Comm, file: string): void {
    if (!this.events) throw new Error("Tracer.write: tracing was not started");
    const mine = new TextEncoder().encode(
      JSON.stringify([...this.events, ...track(this.rank, this.trackName)]),
    );
    const lengths = new Int32Array(world.size);
    world.allgather(new Int32Array([mine.length]), lengths);
    // MPI moves whole 32-bit words: the UTF-8 bytes are padded to a multiple of 4
    const words = (n: number) => new Int32Array(Math.ceil(n / 4));
    if (world.rank !== 0) {
      const buf = words(mine.length);
      new Uint8Array(buf.buffer).set(mine);
      world.send(buf, 0);
      return;
    }
    const all: (TraceEvent | TraceMetadata)[] = [...this.events, ...track(this.rank, this.trackName)];
    for (let r = 1; r < world.size; r++) {
      const buf = words(lengths[r]!);
      world.recv(buf, r);
      const text = new TextDecoder().decode(new Uint8Array(buf.buffer, 0, lengths[r]!));
      all.push(...(JSON.parse(text) as (TraceEvent | TraceMetadata)[]));
    }
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(file, JSON.stringify({ traceEvents: all, displayTimeUnit: "ms" }));
  }
}

/** A track's name, and tracks sorted by rank. */
function track(rank: number, name: string): TraceMetadata[] {
  return [
    { name: "process_name", ph: "M", pid: rank, args: { name } },
    { name: "process_sort_index", ph: "M", pid: rank, args: { sort_index: rank } },
  ];
}

/** The process-wide tracer (like the process group manager). */
export const tracer = new Tracer();
