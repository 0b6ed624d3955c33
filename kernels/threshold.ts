// Dynamic thresholding (Saharia et al. 2022, Imagen §2.3): per sample, s = quantile(|x̂0|, p)
// clamped to [1, c], then x̂0 = clip(x̂0, −s, s)/s. The quantile is found on the GPU by ranking:
// each element counts the elements below and equal to it, so no sort is needed.

import { gridKernel } from "./grid_kernel.ts";
import { empty, type Tensor } from "./tensor.ts";
import { full } from "./vector.ts";
import { f32lit } from "./wgsl.ts";

/** x [B, ...] → { x: thresholded x, s: the per-sample thresholds [B] }. No autograd. */
export function dynamicThreshold(x: Tensor, p = 0.99, cmax = 1.7): { x: Tensor; s: Tensor } {
  const B = x.shape[0];
  const n = x.size / B;
  const pos = p * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  const frac = pos - lo;
  // 1) v_lo and v_hi of each sample's sorted |x| (ties write the same value): one invocation per
  // element i of sample b = i / n
  // filled with 1 first: a quantile point no element ranks at (NaN ranks nowhere) reads 1, not
  // what the buffer held before
  const sel = full([B, 2], 1);
  gridKernel({
    name: "threshold_rank",
    n: B * n,
    read: { X: x },
    write: { S: sel },
    body: `let b = i / ${n}u;
  let base = b * ${n}u;
  let v = abs(X[i]);
  var lt = 0u;
  var eq = 0u;
  for (var j = 0u; j < ${n}u; j++) {
    let w = abs(X[base + j]);
    lt += select(0u, 1u, w < v);
    eq += select(0u, 1u, w == v);
  }
  if (lt <= ${lo}u && ${lo}u < lt + eq) { S[b * 2u] = v; }
  if (lt <= ${hi}u && ${hi}u < lt + eq) { S[b * 2u + 1u] = v; }`,
  });
  // 2) s and the clipped, rescaled x̂0
  const s = empty([B]);
  const out = empty(x.shape);
  gridKernel({
    name: "threshold_clip",
    n: B * n,
    read: { X: x, Sel: sel },
    write: { O: out, S: s },
    body: `let b = i / ${n}u;
  let q = Sel[b * 2u] + ${f32lit(frac)} * (Sel[b * 2u + 1u] - Sel[b * 2u]);
  let s = clamp(q, 1.0, ${f32lit(cmax)});
  if (i == b * ${n}u) { S[b] = s; }
  O[i] = clamp(X[i], -s, s) / s;`,
  });
  sel.dispose();
  return { x: out, s };
}
