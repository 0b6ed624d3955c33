// Parameter initialisation on the CPU from a seeded generator, as docs/spec.md §3 prescribes.

import type { Rng } from "../kernels/host_random.ts";

/** Xavier-uniform for a weight [fanOut, fanIn]. */
export function xavierUniform(rng: Rng, fanOut: number, fanIn: number): Float32Array {
  const a = Math.sqrt(6 / (fanIn + fanOut));
  const w = new Float32Array(fanOut * fanIn);
  for (let i = 0; i < w.length; i++) w[i] = (rng.next() * 2 - 1) * a;
  return w;
}

export function normal(rng: Rng, n: number, std: number): Float32Array {
  const w = new Float32Array(n);
  for (let i = 0; i < n; i++) w[i] = rng.normal() * std;
  return w;
}
