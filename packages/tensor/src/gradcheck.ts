// Finite-difference gradient check: compares backward() with central differences of
// L = sum(f(inputs) * R) for a fixed random R, on every element of every float input.
import { Tensor } from "./tensor.ts";
import { noGrad } from "./autograd.ts";
import { Generator } from "./random.ts";

export interface GradcheckResult {
  maxAbsErr: number;
  /** Largest |numeric - analytic| / max(1, |numeric|) over all checked elements. */
  maxRelErr: number;
}

export function gradcheck(f: (...xs: Tensor[]) => Tensor, inputs: Tensor[], eps = 1e-2): GradcheckResult {
  const gen = new Generator(1234, "gradcheck");
  const probe = noGrad(() => f(...inputs));
  const r = new Tensor(
    Float32Array.from({ length: probe.numel }, () => gen.random() * 2 - 1),
    probe.shape,
  );
  const objective = (): number =>
    noGrad(() => {
      const out = f(...inputs).values();
      const rv = r.storage;
      let s = 0;
      for (let i = 0; i < out.length; i++) s += out[i]! * rv[i]!;
      return s;
    });
  for (const x of inputs)
    if (x.dtype === "float32") {
      x.grad = null;
      x.requiresGrad = true;
    }
  f(...inputs).backward(r);
  let maxAbsErr = 0;
  let maxRelErr = 0;
  for (const x of inputs) {
    if (x.dtype !== "float32") continue;
    const data = x.storage as Float32Array;
    const analytic = x.grad!.values();
    for (let i = 0; i < x.numel; i++) {
      const j = x.offset + i;
      const orig = data[j]!;
      data[j] = orig + eps;
      const up = objective();
      data[j] = orig - eps;
      const down = objective();
      data[j] = orig;
      const numeric = (up - down) / (2 * eps);
      const err = Math.abs(numeric - analytic[i]!);
      maxAbsErr = Math.max(maxAbsErr, err);
      maxRelErr = Math.max(maxRelErr, err / Math.max(1, Math.abs(numeric)));
    }
  }
  return { maxAbsErr, maxRelErr };
}
