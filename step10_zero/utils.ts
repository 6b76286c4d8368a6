// Small helpers shared by the step's scripts (the tutorial's utils.py, the same file in every step).
import { Generator, Tensor } from "@picotron/tensor";
import type { LlamaConfig } from "@picotron/transformers";

/** Prints only where asked (is_print_rank: the rank that logs). */
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

/**
 * Model FLOPs utilization (picotron's get_mfu): 6N + 12 L H S FLOPs per token (forward + backward),
 * against the peak FLOP/s measured on this rank's threads. Returns a percentage.
 */
export function get_mfu(
  tokens_per_second_per_rank: number,
  num_params: number,
  model_config: LlamaConfig,
  seq_len: number,
  peak_flops: number,
): number {
  const flops_per_token =
    6 * num_params + 12 * model_config.num_hidden_layers * model_config.hidden_size * seq_len;
  return ((tokens_per_second_per_rank * flops_per_token) / peak_flops) * 100;
}
