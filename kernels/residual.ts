// The gated residual of a DiT / PixArt-α block: x + keep[b] · gate[b, d] · branch[b, n, d].
// adaLN-single (PixArt-α §2.3, after DiT's adaLN-Zero, Peebles & Xie 2023 §3.2) scales each
// branch by a per-sample, per-channel gate before it joins the residual stream, and stochastic
// depth multiplies the whole branch by the sample's keep factor (0 or 1/(1 − p)). As separate ops
// (mul, dropPath, add) that is three dispatches and two [B, N, D] intermediates that live until
// the step's scope ends; fused, the forward writes only its output and the backward reads only
// gate, branch and keep (dx is g itself).
//
// keep is a constant for autograd, as in dropPath: the caller draws it and no gradient flows to it.

import { record } from "./autograd.ts";
import { dispatch, kernel } from "./runtime.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";
import { ENTRY, flatIndex, grid1d } from "./wgsl.ts";

interface Dims {
  B: number;
  N: number;
  D: number;
}

/** vec4 loads when a row of D splits into whole vec4s (a token row never straddles a gate row). */
function lanes(D: number): 1 | 4 {
  return D % 4 === 0 ? 4 : 1;
}

// x, branch [B, N, D], gate [B, D], keep [B] | null → out [B, N, D] = x + (gate · branch) · keep
function forwardKernel(
  x: Tensor,
  gate: Tensor,
  branch: Tensor,
  keep: Tensor | null,
  { B, N, D }: Dims,
): Tensor {
  const out = empty(x.shape);
  const v = lanes(D);
  const n = (B * N * D) / v;
  if (n === 0) return out;
  const T = v === 4 ? "vec4<f32>" : "f32";
  const [gx, gy] = grid1d(n);
  // multiplied in the unfused ops' order (mul, dropPath, add), so it rounds as they did
  const code = `
@group(0) @binding(0) var<storage, read> X: array<${T}>;
@group(0) @binding(1) var<storage, read> GATE: array<${T}>;
@group(0) @binding(2) var<storage, read> BR: array<${T}>;
@group(0) @binding(3) var<storage, read_write> O: array<${T}>;
${keep ? "@group(0) @binding(4) var<storage, read> K: array<f32>;" : ""}
${ENTRY()} {
  ${flatIndex(gx)}
  if (i >= ${n}u) { return; }
  let b = i / ${(N * D) / v}u;
  let gb = GATE[b * ${D / v}u + i % ${D / v}u] * BR[i];
  O[i] = X[i] + ${keep ? "gb * K[b]" : "gb"};
}`;
  const bufs = [x, gate, branch, out];
  if (keep) bufs.push(keep);
  dispatch(kernel("gated_residual", code), bufs, gx, gy);
  return out;
}

// g [B, N, D], gate [B, D], keep [B] | null → dbranch [B, N, D] = (g · keep) · gate
function branchGradKernel(g: Tensor, gate: Tensor, keep: Tensor | null, { B, N, D }: Dims): Tensor {
  const out = empty(g.shape);
  const v = lanes(D);
  const n = (B * N * D) / v;
  if (n === 0) return out;
  const T = v === 4 ? "vec4<f32>" : "f32";
  const [gx, gy] = grid1d(n);
  const code = `
@group(0) @binding(0) var<storage, read> G: array<${T}>;
@group(0) @binding(1) var<storage, read> GATE: array<${T}>;
@group(0) @binding(2) var<storage, read_write> O: array<${T}>;
${keep ? "@group(0) @binding(3) var<storage, read> K: array<f32>;" : ""}
${ENTRY()} {
  ${flatIndex(gx)}
  if (i >= ${n}u) { return; }
  let b = i / ${(N * D) / v}u;
  O[i] = ${keep ? "(G[i] * K[b])" : "G[i]"} * GATE[b * ${D / v}u + i % ${D / v}u];
}`;
  const bufs = [g, gate, out];
  if (keep) bufs.push(keep);
  dispatch(kernel("gated_residual_backward_branch", code), bufs, gx, gy);
  return out;
}

// g, branch [B, N, D], keep [B] | null → dgate [B, D] = keep · Σ_n g · branch
// One invocation per (b, d) summing its N tokens in order: deterministic (no atomics), and
// consecutive invocations read consecutive channels of one token row.
function gateGradKernel(
  g: Tensor,
  branch: Tensor,
  keep: Tensor | null,
  gateShape: readonly number[],
  { B, N, D }: Dims,
): Tensor {
  const out = empty(gateShape);
  const n = B * D;
  if (n === 0) return out;
  const [gx, gy] = grid1d(n);
  const code = `
@group(0) @binding(0) var<storage, read> G: array<f32>;
@group(0) @binding(1) var<storage, read> BR: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
${keep ? "@group(0) @binding(3) var<storage, read> K: array<f32>;" : ""}
${ENTRY()} {
  ${flatIndex(gx)}
  if (i >= ${n}u) { return; }
  let b = i / ${D}u;
  let base = b * ${N * D}u + i % ${D}u;
  var acc = 0.0;
  for (var t = 0u; t < ${N}u; t++) {
    let j = base + t * ${D}u;
    acc += G[j] * BR[j];
  }
  O[i] = ${keep ? "acc * K[b]" : "acc"};
}`;
  const bufs = [g, branch, out];
  if (keep) bufs.push(keep);
  dispatch(kernel("gated_residual_backward_gate", code), bufs, gx, gy);
  return out;
}

/**
 * x + keep[b] · gate[b, d] · branch[b, n, d]: a DiT / PixArt-α block's gated residual with its
 * drop-path factors. x, branch [B, N, D]; gate [B, D]; keep [B] or null (no drop-path), a constant
 * without gradient. Gradients to x, gate and branch.
 */
export function gatedResidual(
  x: Tensor,
  gate: Tensor,
  branch: Tensor,
  keep: Tensor | null = null,
): Tensor {
  const where = () =>
    `x ${shapeStr(x.shape)}, gate ${shapeStr(gate.shape)}, branch ${shapeStr(branch.shape)}, keep ${
      keep ? shapeStr(keep.shape) : "none"
    }`;
  if (x.rank !== 3) throw new Error(`gatedResidual: x must be [B, N, D] (${where()})`);
  const [B, N, D] = x.shape;
  if (branch.rank !== 3 || branch.shape.some((d, k) => d !== x.shape[k])) {
    throw new Error(`gatedResidual: branch must have x's shape (${where()})`);
  }
  if (gate.rank !== 2 || gate.shape[0] !== B || gate.shape[1] !== D) {
    throw new Error(`gatedResidual: gate must be [B, D] = [${B}, ${D}] (${where()})`);
  }
  if (keep && (keep.rank !== 1 || keep.shape[0] !== B)) {
    throw new Error(`gatedResidual: keep must be [B] = [${B}] (${where()})`);
  }
  for (const [name, t] of [["x", x], ["gate", gate], ["branch", branch], ["keep", keep]] as const) {
    if (t && t.dtype !== "f32") {
      throw new Error(`gatedResidual: ${name} must be f32, is ${t.dtype}`);
    }
  }
  const dims = { B, N, D };
  const out = forwardKernel(x, gate, branch, keep, dims);
  // g [B, N, D] → dx = g, dgate = keep · Σ_n g · branch [B, D], dbranch = g · gate · keep
  return record(out, "gated_residual", [x, gate, branch], (g) => [
    x.requiresGrad ? g : null,
    gate.requiresGrad ? gateGradKernel(g, branch, keep, gate.shape, dims) : null,
    branch.requiresGrad ? branchGradKernel(g, gate, keep, dims) : null,
  ], [branch.requiresGrad ? gate : null, gate.requiresGrad ? branch : null, keep]);
}
