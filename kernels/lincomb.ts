// out = Σ_k c_k·x_k with the coefficients in a GPU tensor, so a sampler's per-step constants
// need no new pipeline. No autograd.

import { dispatch, kernel, sizeWords } from "./runtime.ts";
import { empty, shapeStr, type Tensor, tensor } from "./tensor.ts";
import { ENTRY_FLAT, grid1d, sizesDecl } from "./wgsl.ts";

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
  const n = out.size;
  const [gx, gy] = grid1d(n);
  const decls = xs.map((_, k) => `@group(0) @binding(${k}) var<storage, read> X${k}: array<f32>;`)
    .join("\n");
  const terms = xs.map((_, k) => `C[${k}] * X${k}[i]`).join(" + ");
  const code = `${decls}
@group(0) @binding(${xs.length}) var<storage, read> C: array<f32>;
@group(0) @binding(${xs.length + 1}) var<storage, read_write> O: array<f32>;
${sizesDecl(xs.length + 2)}
${ENTRY_FLAT()}
  if (i >= S[0]) { return; }
  O[i] = ${terms};
}`;
  dispatch(
    kernel(`lincomb${xs.length}`, code),
    [...xs, c, out, sizeWords([n])],
    gx,
    gy,
  );
  c.dispose();
  return out;
}
