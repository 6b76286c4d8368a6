// Runs every operation on the world and on sub-communicators of a grid of 2-rank rows and
// reports what each rank ended with. Usage: mpirun -n N node --expose-gc --import tsx collectives.ts OUT_DIR
import { init, waitAll, type Buffer, type Comm, type ReduceOp, type Request } from "../../src/index.ts";
import { DTYPES, inputValue, writeResults, type DtypeName, type Results } from "./fixtures.ts";

const world = init();
const { rank, size } = world;
const next = (rank + 1) % size;
const prev = (rank - 1 + size) % size;
const results: Results = {};

function make(dtype: DtypeName, length: number): Buffer {
  switch (dtype) {
    case "Float32Array":
      return new Float32Array(length);
    case "Float64Array":
      return new Float64Array(length);
    case "Int32Array":
      return new Int32Array(length);
    case "BigInt64Array":
      return new BigInt64Array(length);
  }
}

/** inputValue(of, 0..length-1) */
function inputs(of: number, length: number): number[] {
  return Array.from({ length }, (_, i) => inputValue(of, i));
}

/** A buffer of the given dtype holding this rank's inputs. */
function input(dtype: DtypeName, length: number): Buffer {
  const buf = make(dtype, length);
  const values = inputs(rank, length);
  if (buf instanceof BigInt64Array) buf.set(values.map(BigInt));
  else buf.set(values);
  return buf;
}

function record(name: string, buf: Buffer | number[]): void {
  results[name] = Array.from(buf as ArrayLike<number | bigint>, Number);
}

// --- Every dtype through every collective on the world.
for (const dtype of DTYPES) {
  const ops: ReduceOp[] = dtype.startsWith("Float") ? ["sum", "max", "min", "avg"] : ["sum", "max", "min"];
  for (const op of ops) {
    const buf = input(dtype, 5);
    world.allreduce(buf, op);
    record(`allreduce.${op}.${dtype}`, buf);
  }
  const send = input(dtype, 5);
  const recv = make(dtype, 5);
  world.allreduceInto(send, recv, "max");
  record(`allreduceInto.max.${dtype}`, recv);
  record(`allreduceInto.send.${dtype}`, send);

  const gathered = make(dtype, 3 * size);
  world.allgather(input(dtype, 3), gathered);
  record(`allgather.${dtype}`, gathered);

  const scattered = make(dtype, 3);
  world.reduceScatter(input(dtype, 3 * size), scattered, "sum");
  record(`reduceScatter.sum.${dtype}`, scattered);

  const bcast = input(dtype, 4);
  world.broadcast(bcast, size - 1);
  record(`broadcast.${dtype}`, bcast);

  const swapped = make(dtype, 4);
  world.sendrecv(input(dtype, 4), next, swapped, prev, 3);
  record(`sendrecv.${dtype}`, swapped);
}

// --- Views into larger buffers: only the view's elements may change.
{
  const flat = new Float64Array(12).fill(100);
  const view = flat.subarray(4, 9);
  view.set(inputs(rank, 5));
  world.allreduce(view, "sum");
  record("subarray.allreduce", flat);

  const gathered = new Float32Array(3 * size).fill(-1);
  gathered.set(inputs(rank, 3), 3 * rank);
  world.allgather(gathered.subarray(3 * rank, 3 * rank + 3), gathered); // in place
  record("allgather.inplace", gathered);

  const outgoing = new Int32Array(10).fill(-7);
  outgoing.set(inputs(rank, 4), 6);
  const incoming = new Int32Array(10).fill(-9);
  // Even ranks send first and odd ranks receive first, so the blocking calls pair up.
  const sendPart = outgoing.subarray(6, 10);
  const recvPart = incoming.subarray(2, 6);
  if (rank % 2 === 0) {
    world.send(sendPart, next, 5);
    world.recv(recvPart, prev, 5);
  } else {
    world.recv(recvPart, prev, 5);
    world.send(sendPart, next, 5);
  }
  record("sendRecv.subarray", incoming);
}

// --- Non-blocking: a ring of isend/irecv, and an iallreduce overlapped with computation.
{
  const incoming = new Float64Array(6);
  const requests: Request[] = [
    world.irecv(incoming, prev, 7),
    world.isend(input("Float64Array", 6), next, 7),
  ];
  waitAll(requests);
  record("isendIrecv.ring", incoming);
  record(
    "isendIrecv.done",
    requests.map((r) => (r.done ? 1 : 0)),
  );

  const big = new Float32Array(1 << 20);
  for (let i = 0; i < big.length; i++) big[i] = inputValue(rank, i % 11);
  const request = world.iallreduce(big, "sum");
  let work = 0;
  let polls = 0;
  // Work while the reduction runs; test() now and then also lets MPI progress.
  for (let round = 0; round < 200 && !request.test(); round++) {
    polls++;
    for (let i = 0; i < 20_000; i++) work += Math.sqrt(i);
  }
  request.wait();
  record("iallreduce.overlap.head", big.subarray(0, 22));
  let total = 0;
  for (let i = 0; i < big.length; i++) total += big[i];
  record("iallreduce.overlap.total", [total]);
  record("iallreduce.overlap.worked", [polls > 0 && work > 0 ? 1 : 0]);

  // A large message each way around the ring, moving while this rank works.
  const outgoing = new Float64Array(1 << 20);
  for (let i = 0; i < outgoing.length; i++) outgoing[i] = inputValue(rank, i % 13);
  const received = new Float64Array(outgoing.length);
  const ring = [world.irecv(received, prev, 13)];
  const pendingAtFirst = !ring[0]!.test(); // certain: nobody sends before the barrier
  world.barrier();
  ring.push(world.isend(outgoing, next, 13));
  // The work: summing what is being sent (reading a buffer in flight is allowed), a chunk
  // at a time, with a test() after each chunk to let MPI progress.
  let sentTotal = 0;
  for (let start = 0; start < outgoing.length; start += 1 << 16) {
    for (let i = start; i < start + (1 << 16); i++) sentTotal += outgoing[i];
    ring.every((r) => r.test());
  }
  waitAll(ring); // test() may have completed them; waitAll still counts as their wait
  record("isendIrecv.overlap.head", received.subarray(0, 26));
  let ringTotal = 0;
  for (let i = 0; i < received.length; i++) ringTotal += received[i];
  record("isendIrecv.overlap.total", [ringTotal]);
  record("isendIrecv.overlap.pendingAtFirst", [pendingAtFirst ? 1 : 0]);
  record("isendIrecv.overlap.sentTotal", [sentTotal]);

  const averaged = input("Float64Array", 5);
  world.iallreduce(averaged, "avg").wait();
  record("iallreduce.avg", averaged);

  // ireduceScatter: the send array dropped by JS right away (the request keeps it alive)
  const block = new Float32Array(3);
  const scatter = world.ireduceScatter(input("Float32Array", 3 * size), block, "avg");
  scatter.wait();
  record("ireduceScatter.avg", block);
}

// --- A pending request keeps its buffer alive although nothing else refers to it, and
// lets it go once complete. WeakRef says whether the garbage collector took the buffer.
{
  const gc = (globalThis as { gc?: () => void }).gc;
  if (!gc) throw new Error("run the worker with node --expose-gc");
  // WeakRef keeps its target until the current job ends: let a macrotask pass before each gc.
  const collect = async () => {
    await new Promise((resolve) => setTimeout(resolve, 0));
    gc();
  };
  let request: Request | undefined;
  const bufferRef = (() => {
    const buffer = new Float64Array(1000);
    request = world.irecv(buffer, prev, 11);
    return new WeakRef(buffer);
  })();
  await collect();
  const aliveWhilePending = bufferRef.deref() !== undefined;
  world.barrier(); // every rank has posted its irecv
  world.send(input("Float64Array", 1000), next, 11);
  request!.wait();
  record("gc.received.head", bufferRef.deref()!.subarray(0, 8));
  request = undefined;
  await collect();
  await collect();
  record("gc.keepalive", [aliveWhilePending ? 1 : 0, bufferRef.deref() === undefined ? 1 : 0]);
}

// --- Sub-communicators: a grid of rows of 2 ranks, made by split and by rank lists.
{
  const comms: Record<string, Comm | null> = {
    rowSplit: world.split(Math.floor(rank / 2), rank),
    colSplit: world.split(rank % 2, -rank), // key -rank: higher world ranks first
  };
  const byList = (lists: number[][]): Comm | null => {
    let mine: Comm | null = null;
    for (const list of lists) {
      const created = world.createGroup(list); // every rank calls it for every list
      if (created !== null) mine = created;
    }
    return mine;
  };
  const ranks = Array.from({ length: size }, (_, r) => r);
  const rows = ranks.filter((r) => r % 2 === 0).map((r) => ranks.filter((s) => Math.floor(s / 2) === r / 2));
  const cols = [0, 1].map((c) => ranks.filter((r) => r % 2 === c).reverse());
  comms.rowGroup = byList(rows);
  comms.colGroup = byList(cols);

  for (const [name, comm] of Object.entries(comms)) {
    if (comm === null) throw new Error(`rank ${rank} is in no ${name}`);
    record(`${name}.shape`, [comm.rank, comm.size]);
    const sum = new Float64Array([rank + 1, 10 * (rank + 1)]);
    comm.allreduce(sum);
    record(`${name}.allreduce`, sum);
    const members = new Int32Array(comm.size);
    comm.allgather(new Int32Array([rank]), members);
    record(`${name}.allgather`, members);
    const root = new BigInt64Array([BigInt(rank * 3)]);
    comm.broadcast(root, comm.size - 1);
    record(`${name}.broadcast`, root);
    const fromPrev = new Float32Array(1);
    comm.sendrecv(
      new Float32Array([rank]),
      (comm.rank + 1) % comm.size,
      fromPrev,
      (comm.rank - 1 + comm.size) % comm.size,
    );
    record(`${name}.sendrecv`, fromPrev);
    const viaRequest = new Int32Array([rank]);
    comm.iallreduce(viaRequest, "max").wait();
    record(`${name}.iallreduce`, viaRequest);
    const averaged = new Float32Array(2);
    comm.allreduceInto(new Float32Array([rank + 1, -3 * rank]), averaged, "avg");
    record(`${name}.allreduceInto.avg`, averaged);
    const blocks = Int32Array.from({ length: 2 * comm.size }, (_, j) => (rank + 1) * (j + 1));
    const myBlock = new Int32Array(2);
    comm.reduceScatter(blocks, myBlock);
    record(`${name}.reduceScatter`, myBlock);
    const nextMember = (comm.rank + 1) % comm.size;
    const prevMember = (comm.rank - 1 + comm.size) % comm.size;
    if (comm.size > 1) {
      // Blocking send/recv around the ring: even members send first, so the calls pair up.
      const fromPrevBlocking = new Float64Array(2);
      const mine = new Float64Array([rank, rank * rank]);
      if (comm.rank % 2 === 0) {
        comm.send(mine, nextMember, 2);
        comm.recv(fromPrevBlocking, prevMember, 2);
      } else {
        comm.recv(fromPrevBlocking, prevMember, 2);
        comm.send(mine, nextMember, 2);
      }
      record(`${name}.sendRecv`, fromPrevBlocking);
    }
    const fromPrevRequest = new BigInt64Array(1);
    waitAll([
      comm.irecv(fromPrevRequest, prevMember, 4),
      comm.isend(new BigInt64Array([BigInt(rank * 7)]), nextMember, 4),
    ]);
    record(`${name}.isendIrecv`, fromPrevRequest);
    comm.barrier();
    comm.free();
  }

  // A null color joins no communicator.
  const withoutZero = world.split(rank === 0 ? null : 5);
  record("splitNull.isNull", [withoutZero === null ? 1 : 0]);
  if (withoutZero !== null) {
    const sum = new Int32Array([rank]);
    withoutZero.allreduce(sum);
    record("splitNull.allreduce", sum);
    withoutZero.free();
  }
}

writeResults(process.argv[2]!, rank, results);
