// nn.Module: parameters are discovered from the module's own fields in declaration order, so the
// state-dict names are the field paths, exactly picotron's ("decoder_layers.0.attention.q_proj.weight").
import { Tensor, shapeStr, numelOf } from "../tensor.ts";
import { fillRandom, type Distribution } from "../random.ts";
import { noGrad } from "../autograd.ts";

/** A trainable tensor, with how to initialize it (and, when sharded, where its elements sit in the full tensor). */
export class Parameter extends Tensor {
  /** Distribution of the full (master) tensor; null means "ones" (norm weights). */
  init: Distribution | null = null;
  /** Maps an element of this (possibly sharded) tensor to its index in the master tensor. */
  masterIndex: (j: number) => number = (j) => j;

  constructor(shape: readonly number[]) {
    super(new Float32Array(numelOf(shape)), shape);
    this.requiresGrad = true;
  }
}

export abstract class Module {
  training = true;

  /** (name, parameter) pairs, depth first in field order. */
  namedParameters(prefix = ""): [string, Parameter][] {
    const out: [string, Parameter][] = [];
    for (const [name, value] of Object.entries(this)) {
      const path = prefix + name;
      if (value instanceof Parameter) out.push([path, value]);
      else if (value instanceof Module) out.push(...value.namedParameters(path + "."));
      else if (Array.isArray(value)) {
        value.forEach((m, i) => {
          if (m instanceof Module) out.push(...m.namedParameters(`${path}.${i}.`));
        });
      }
    }
    return out;
  }

  parameters(): Parameter[] {
    return this.namedParameters().map(([, p]) => p);
  }

  numParameters(): number {
    return this.parameters().reduce((n, p) => n + p.numel, 0);
  }

  modules(): Module[] {
    const out: Module[] = [this];
    for (const value of Object.values(this)) {
      if (value instanceof Module) out.push(...value.modules());
      else if (Array.isArray(value)) for (const m of value) if (m instanceof Module) out.push(...m.modules());
    }
    return out;
  }

  train(mode = true): this {
    for (const m of this.modules()) m.training = mode;
    return this;
  }
  eval(): this {
    return this.train(false);
  }

  stateDict(): Record<string, Tensor> {
    return Object.fromEntries(this.namedParameters());
  }

  /** Copies values into the parameters; names and shapes must match exactly. */
  loadStateDict(state: Record<string, Tensor>, { strict = true }: { strict?: boolean } = {}): void {
    const own = new Map(this.namedParameters());
    const missing = [...own.keys()].filter((k) => !(k in state));
    const unexpected = Object.keys(state).filter((k) => !own.has(k));
    if (strict && (missing.length || unexpected.length)) {
      throw new Error(
        `loadStateDict: missing keys [${missing.join(", ")}], unexpected keys [${unexpected.join(", ")}]`,
      );
    }
    for (const [name, p] of own) {
      const t = state[name];
      if (!t) continue;
      if (t.shape.length !== p.shape.length || t.shape.some((d, i) => d !== p.shape[i])) {
        throw new Error(
          `loadStateDict: ${name} has shape ${shapeStr(t.shape)}, the model expects ${shapeStr(p.shape)}`,
        );
      }
      (p.storage as Float32Array).set(t.values() as Float32Array);
    }
  }

  /** Gives every parameter its initial values from (seed, its name): see random.ts. */
  initWeights(seed: number): this {
    noGrad(() => {
      for (const [name, p] of this.namedParameters()) {
        const data = p.storage as Float32Array;
        if (p.init === null) data.fill(1);
        else fillRandom(data, seed, name, p.init, p.masterIndex);
      }
    });
    return this;
  }
}
