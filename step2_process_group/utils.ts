// Small helpers shared by the step's scripts (the tutorial's utils.py).
import { Generator, Tensor } from "@picotron/tensor";

/** Prints only where asked (later steps pass is_print_rank for the rank that logs). */
export function print(message: string, is_print_rank = true): void {
  if (is_print_rank) console.log(message);
}

/** 1234567 -> "1.23M". */
export function to_readable_format(n: number, precision = 2): string {
  for (const [unit, size] of [
    ["T", 1e12],
    ["B", 1e9],
    ["M", 1e6],
    ["K", 1e3],
  ] as const) {
    if (Math.abs(n) >= size) return `${(n / size).toFixed(precision)}${unit}`;
  }
  return n.toFixed(precision);
}

/** torch.randint(0, high, shape) from a seeded generator. */
export function randint(gen: Generator, high: number, shape: number[]): Tensor {
  const n = shape.reduce((a, b) => a * b, 1);
  return new Tensor(
    Int32Array.from({ length: n }, () => gen.randint(high)),
    shape,
  );
}
