// Reverse-mode autograd in the style of micrograd: every op output remembers a Node (its inputs and a
// closure that maps the output's gradient to the inputs' gradients); backward() walks the graph in
// reverse topological order. Leaves accumulate into .grad and then fire their post-accumulate hooks.
// Autograd knows tensors, never kernels: its only math is adding gradients, done in plain loops.
import { Tensor, type GradNode } from "./tensor.ts";
import { timed } from "./profiler.ts";

export class Node implements GradNode {
  constructor(
    readonly name: string,
    /** The inputs that need a gradient (null where an input does not). */
    readonly inputs: readonly (Tensor | null)[],
    /** Releases its saved tensors when set to null after use. */
    public backwardFn: ((grad: Tensor) => (Tensor | null)[]) | null,
  ) {}
}

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording a graph (like torch.no_grad()). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

/** Tensors reachable from root through gradFn edges, each after every tensor that consumes it. */
function reverseTopological(root: Tensor): { order: Tensor[]; leafEdges: Map<Tensor, number> } {
  const order: Tensor[] = [];
  const leafEdges = new Map<Tensor, number>();
  const visited = new Set<Tensor>();
  // iterative DFS (graphs of deep models would overflow the JS stack recursively)
  const stack: [Tensor, number][] = [[root, 0]];
  visited.add(root);
  while (stack.length > 0) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    const inputs = t.gradFn?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const child = inputs[i];
      if (!child) continue;
      if (child.isLeaf) leafEdges.set(child, (leafEdges.get(child) ?? 0) + 1);
      else if (!visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      stack.pop();
      order.push(t);
    }
  }
  return { order: order.reverse(), leafEdges };
}

function accumulate(t: Tensor, g: Tensor, owned: boolean): void {
  if (g.shape.length !== t.shape.length || g.shape.some((d, i) => d !== t.shape[i])) {
    throw new Error(`gradient shape [${g.shape}] does not match tensor shape [${t.shape}]`);
  }
  if (t.grad === null) {
    // Adopt a gradient no one else holds; copy one that may be shared (an op can hand the same
    // gradient to several inputs, or a view of its own incoming gradient).
    t.grad = owned && g.offset === 0 && g.storage.length === g.numel && g.isContiguous() ? g : g.clone();
    return;
  }
  if (!t.grad.isContiguous()) throw new Error("a leaf's .grad must be contiguous to accumulate into it");
  const dst = t.grad.values() as Float32Array;
  const src = g.values() as Float32Array;
  for (let i = 0; i < dst.length; i++) dst[i] += src[i]!;
}

/** True when a and b are views of the same memory. */
function sameMemory(a: Tensor, b: Tensor): boolean {
  return a.storage.buffer === b.storage.buffer;
}

/** True when `grad` is a fresh buffer: not the incoming gradient and not handed to another input. */
function isOwned(grad: Tensor, incoming: Tensor, all: (Tensor | null)[]): boolean {
  if (sameMemory(grad, incoming)) return false;
  let uses = 0;
  for (const x of all) if (x && sameMemory(x, grad)) uses++;
  return uses === 1;
}

export function backward(root: Tensor, gradOutput?: Tensor): void {
  if (!root.requiresGrad) throw new Error("backward: tensor does not require grad (no graph was recorded)");
  let seed = gradOutput;
  if (!seed) {
    if (root.numel !== 1) {
      throw new Error(
        `backward() without a gradient needs a scalar, got shape [${root.shape}]; pass gradOutput`,
      );
    }
    seed = root.clone();
    (seed.storage as Float32Array).fill(1);
  } else if (seed.shape.length !== root.shape.length || seed.shape.some((d, i) => d !== root.shape[i])) {
    throw new Error(`backward: gradOutput shape [${seed.shape}] does not match output shape [${root.shape}]`);
  }
  if (root.isLeaf) {
    accumulate(root, seed, false);
    for (const h of root.postAccumulateGradHooks) h(root);
    return;
  }
  const { order, leafEdges } = reverseTopological(root);
  const grads = new Map<Tensor, Tensor>([[root, seed]]);
  // The tensors whose pending gradient no one but this loop holds (an op's fresh output, or the one view
  // of such a gradient that an op like reshape passed on): once used, its memory goes back for reuse.
  const owned = new Set<Tensor>();
  for (const t of order) {
    const g = grads.get(t);
    grads.delete(t);
    const gOwned = owned.delete(t);
    const node = t.gradFn!;
    const fn = node.backwardFn;
    if (!fn) throw new Error(`backward through ${node.name} a second time: its saved tensors were freed`);
    node.backwardFn = null;
    if (g && t.retainsGrad) accumulate(t, g, false);
    const inputGrads = g
      ? timed(
          () => `${node.name}.backward [${t.shape.join(", ")}]`,
          () => fn(g),
        )
      : [];
    // the input gradients that view g's memory: with exactly one, it inherits g's ownership
    const views = g ? inputGrads.filter((x) => x && sameMemory(x, g)) : [];
    node.inputs.forEach((input, i) => {
      if (!input) return;
      const gi = inputGrads[i];
      if (input.isLeaf) {
        if (gi) timed("(grad accumulation)", () => accumulate(input, gi, isOwned(gi, g!, inputGrads)));
        const left = leafEdges.get(input)! - 1;
        leafEdges.set(input, left);
        if (left === 0) for (const h of input.postAccumulateGradHooks) h(input);
      } else if (gi) {
        const giOwned = isOwned(gi, g!, inputGrads) || (gOwned && views.length === 1 && views[0] === gi);
        const prev = grads.get(input);
        if (!prev) {
          grads.set(input, gi);
          if (giOwned) owned.add(input);
          return;
        }
        grads.set(
          input,
          timed("(grad accumulation)", () => addGrads(prev, gi)),
        );
        if (owned.has(input)) recycle(prev);
        if (giOwned) recycle(gi);
        owned.add(input); // the sum is a fresh buffer
      }
    });
    if (g && gOwned && views.length === 0) recycle(g);
  }
}

/** Hands a used gradient's memory back for reuse, when the tensor spans all of it. */
function recycle(g: Tensor): void {
  const s = g.storage;
  if (
    g.offset === 0 &&
    g.numel === s.length &&
    s.byteLength === s.buffer.byteLength &&
    s instanceof Float32Array
  )
    recycleArray(s);
}

/** a + b into a new array: a plain loop until the ops layer plugs in a vectorized kernel. */
let addArrays = (a: Float32Array, b: Float32Array): Float32Array => {
  const out = new Float32Array(a.length);
  for (let i = 0; i < out.length; i++) out[i] = a[i]! + b[i]!;
  return out;
};

/**
 * Sets how two gradients are added. Autograd's only arithmetic is this sum (a tensor used twice, like the
 * residual stream, gets the sum of both gradients); ops/elementwise.ts plugs in onnxruntime's Add, about
 * 3x faster than the loop, so that autograd itself never depends on the kernel layer.
 */
export function setGradientAdder(add: (a: Float32Array, b: Float32Array) => Float32Array): void {
  addArrays = add;
}

let recycleArray = (_a: Float32Array): void => {};

/**
 * Sets where the gradients autograd is done with go: ops/alloc.ts keeps them for its next buffers of the
 * same length (fewer new ArrayBuffers, so fewer garbage-collector cycles; see there).
 */
export function setGradientRecycler(recycle: (a: Float32Array) => void): void {
  recycleArray = recycle;
}

/** a + b in a new buffer (a and b may be shared with other nodes, so neither is reused). */
function addGrads(a: Tensor, b: Tensor): Tensor {
  return new Tensor(addArrays(a.values() as Float32Array, b.values() as Float32Array), a.shape);
}

/** Wraps an op's output into the graph when gradients are on and some input needs one. */
export function withGrad(
  out: Tensor,
  name: string,
  inputs: readonly Tensor[],
  backward: (grad: Tensor) => (Tensor | null)[],
): Tensor {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return out;
  out.requiresGrad = true;
  out.gradFn = new Node(
    name,
    inputs.map((t) => (t.requiresGrad ? t : null)),
    backward,
  );
  return out;
}

/** What a custom function's forward may stash for its backward (like PyTorch's ctx). */
export interface FunctionCtx {
  saved: Tensor[];
  [key: string]: unknown;
}

export interface FunctionSpec<Args extends Tensor[]> {
  name: string;
  /** Runs without recording a graph; returns the output. */
  forward(ctx: FunctionCtx, ...args: Args): Tensor;
  /** The gradient of each argument (null where none), given the output's gradient. */
  backward(ctx: FunctionCtx, grad: Tensor): (Tensor | null)[];
}

/**
 * A differentiable function written by hand (torch.autograd.Function): tensor parallelism's
 * Copy/Reduce/Gather and context parallelism's ring attention are built with it.
 *   const Copy = defineFunction({ name: "Copy", forward: (_ctx, x) => x.clone(), backward: (_ctx, g) => [allReduce(g)] });
 */
export function defineFunction<Args extends Tensor[]>(spec: FunctionSpec<Args>): (...args: Args) => Tensor {
  return (...args: Args) => {
    const ctx: FunctionCtx = { saved: [] };
    const out = timed(
      (o) => `${spec.name} [${o.shape.join(", ")}]`,
      () => noGrad(() => spec.forward(ctx, ...args)),
    );
    if (!gradEnabled || !args.some((a) => a.requiresGrad)) return out;
    // The output must be a fresh node even when forward returned an input (identity forward).
    const result = out.gradFn === null && !args.includes(out) ? out : out.detach();
    result.requiresGrad = true;
    result.gradFn = new Node(
      spec.name,
      args.map((a) => (a.requiresGrad ? a : null)),
      (g) => {
        const grads = spec.backward(ctx, g);
        if (grads.length !== args.length) {
          throw new Error(
            `${spec.name}.backward returned ${grads.length} gradients for ${args.length} inputs`,
          );
        }
        return grads;
      },
    );
    return result;
  };
}
