// Dynamic thresholding (Saharia et al. 2022, Imagen §2.3): per sample, s = quantile(|x̂0|, p)
// clamped to [1, c], then x̂0 = clip(x̂0, −s, s)/s. The quantile is found on the GPU by ranking:
// each element counts the elements below and equal to it, so no sort is needed.

import { dispatch, kernel } from "./runtime.ts";
import { empty, type Tensor } from "./tensor.ts";
import { f32lit } from "./wgsl.ts";

/** x [B, ...] → { x: thresholded x, s: the per-sample thresholds [B] }. No autograd. */
export function dynamicThreshold(x: Tensor, p = 0.99, cmax = 1.7): { x: Tensor; s: Tensor } {
  const B = x.shape[0];
  const n = x.size / B;
  const pos = p * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  const frac = pos - lo;
  const WG = 64;
  // 1) v_lo and v_hi of each sample's sorted |x| (ties write the same value)
  const sel = empty([B, 2]);
  const rankCode = `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read_write> S: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.y;
  let e = wid.x * ${WG}u + lid.x;
  if (e >= ${n}u) { return; }
  let base = b * ${n}u;
  let v = abs(X[base + e]);
  var lt = 0u;
  var eq = 0u;
  for (var j = 0u; j < ${n}u; j++) {
    let w = abs(X[base + j]);
    lt += select(0u, 1u, w < v);
    eq += select(0u, 1u, w == v);
  }
  if (lt <= ${lo}u && ${lo}u < lt + eq) { S[b * 2u] = v; }
  if (lt <= ${hi}u && ${hi}u < lt + eq) { S[b * 2u + 1u] = v; }
}`;
  dispatch(kernel("threshold_rank", rankCode), [x, sel], Math.ceil(n / WG), B);
  // 2) s and the clipped, rescaled x̂0
  const s = empty([B]);
  const out = empty(x.shape);
  const clipCode = `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> Sel: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
@group(0) @binding(3) var<storage, read_write> S: array<f32>;
@compute @workgroup_size(${WG})
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let b = wid.y;
  let e = wid.x * ${WG}u + lid.x;
  if (e >= ${n}u) { return; }
  let q = Sel[b * 2u] + ${f32lit(frac)} * (Sel[b * 2u + 1u] - Sel[b * 2u]);
  let s = clamp(q, 1.0, ${f32lit(cmax)});
  if (e == 0u) { S[b] = s; }
  O[b * ${n}u + e] = clamp(X[b * ${n}u + e], -s, s) / s;
}`;
  dispatch(
    kernel("threshold_clip", clipCode),
    [x, sel, out, s],
    Math.ceil(n / WG),
    B,
  );
  sel.dispose();
  return { x: out, s };
}
