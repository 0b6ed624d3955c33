// out = Σ_k c_k·x_k with the coefficients in a GPU tensor, so a sampler's per-step constants
// need no new pipeline. No autograd.

import { gridKernel } from "./grid_kernel.ts";
import { empty, shapeStr, type Tensor, tensor } from "./tensor.ts";

/** Σ_k coefs[k]·xs[k] (all xs of one shape); coefs are host numbers uploaded as one tensor. */
export function lincomb(xs: Tensor[], coefs: number[]): Tensor {
  if (xs.length !== coefs.length || xs.length === 0) {
    throw new Error(`lincomb: ${xs.length} tensors, ${coefs.length} coefficients`);
  }
  for (const x of xs) {
    if (x.size !== xs[0].size) {
      throw new Error(`lincomb: ${shapeStr(x.shape)} differs from ${shapeStr(xs[0].shape)}`);
    }
  }
  const c = tensor(Float32Array.from(coefs), [coefs.length]);
  const out = empty(xs[0].shape);
  // xs[k] [n], coefs [K] → out [n]; one pipeline for every size
  gridKernel({
    name: `lincomb${xs.length}`,
    n: out.size,
    read: { ...Object.fromEntries(xs.map((x, k) => [`X${k}`, x])), C: c },
    write: { O: out },
    body: `O[i] = ${xs.map((_, k) => `C[${k}] * X${k}[i]`).join(" + ")};`,
    sizes: [],
  });
  c.dispose();
  return out;
}
