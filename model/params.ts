// Named parameters: the official PixArt-α state-dict names mapped to GPU tensors.

import { type Tensor, tensor } from "../kernels/mod.ts";
import { Rng } from "../kernels/host_random.ts";
import { normal, xavierUniform } from "./init.ts";

export type Init = "zeros" | "ones" | "xavier" | { xavier: [number, number] } | { normal: number };

export interface ParamSpec {
  name: string;
  shape: number[];
  init: Init;
}

export class Params {
  readonly map: Map<string, Tensor> = new Map();
  #requiresGrad: boolean;

  /**
   * Weights loaded for sampling need no gradient (ops then record nothing and keep no
   * intermediates); a trainer turns gradients on with requireGrad(true).
   */
  constructor(o: { requiresGrad?: boolean } = {}) {
    this.#requiresGrad = o.requiresGrad ?? false;
  }

  /** Whether the parameters are trainable: every tensor's requiresGrad follows this flag. */
  get requiresGrad(): boolean {
    return this.#requiresGrad;
  }

  requireGrad(on: boolean): this {
    this.#requiresGrad = on;
    for (const t of this.map.values()) t.requiresGrad = on;
    return this;
  }

  get(name: string): Tensor {
    const t = this.map.get(name);
    if (!t) throw new Error(`model has no parameter '${name}'`);
    return t;
  }

  has(name: string): boolean {
    return this.map.has(name);
  }

  set(name: string, t: Tensor): void {
    this.map.get(name)?.dispose();
    t.keep();
    t.requiresGrad = this.#requiresGrad;
    this.map.set(name, t);
  }

  names(): string[] {
    return [...this.map.keys()];
  }

  tensors(): Tensor[] {
    return [...this.map.values()];
  }

  count(): number {
    let n = 0;
    for (const t of this.map.values()) n += t.size;
    return n;
  }

  dispose(): void {
    for (const t of this.map.values()) {
      t.grad?.dispose();
      t.dispose();
    }
    this.map.clear();
  }
}

/**
 * A parameter or layer name, or a prefix of whole name segments, `*` standing for any one segment
 * ("blocks.*.cross_attn" matches "blocks.3.cross_attn.proj.weight"; "blocks.*.cross" does not).
 */
export function namePattern(p: string): RegExp {
  const segments = p.split(".").map((seg) => seg === "*" ? "[^.]+" : RegExp.escape(seg));
  return new RegExp(`^${segments.join("\\.")}(\\.|$)`);
}

/** Host values of one parameter's initialisation. */
export function initValues(spec: ParamSpec, rng: Rng): Float32Array {
  const n = spec.shape.reduce((a, b) => a * b, 1);
  const init = spec.init;
  if (init === "zeros") return new Float32Array(n);
  if (init === "ones") return new Float32Array(n).fill(1);
  if (init === "xavier") return xavierUniform(rng, spec.shape[0], n / spec.shape[0]);
  if ("xavier" in init) return xavierUniform(rng, init.xavier[0], init.xavier[1]);
  return normal(rng, n, init.normal);
}

/**
 * Creates every parameter from its initialisation, in spec order, from one seed. Fresh weights
 * are made to be trained, so they require gradients.
 */
export function initParams(specs: ParamSpec[], seed: number): Params {
  const rng = new Rng(seed);
  const P = new Params({ requiresGrad: true });
  for (const s of specs) P.set(s.name, tensor(initValues(s, rng), s.shape));
  return P;
}
