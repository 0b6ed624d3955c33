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
import { gridKernel } from "./grid_kernel.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";

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
  const v = lanes(D), T = v === 4 ? "vec4<f32>" : "f32";
  // multiplied in the unfused ops' order (mul, dropPath, add), so it rounds as they did
  gridKernel({
    name: "gated_residual",
    n: (B * N * D) / v,
    read: { X: [x, T], GATE: [gate, T], BR: [branch, T], K: keep },
    write: { O: [out, T] },
    body: `let b = i / ${(N * D) / v}u;
  let gb = GATE[b * ${D / v}u + i % ${D / v}u] * BR[i];
  O[i] = X[i] + ${keep ? "gb * K[b]" : "gb"};`,
  });
  return out;
}

// g [B, N, D], gate [B, D], keep [B] | null → dbranch [B, N, D] = (g · keep) · gate
function branchGradKernel(g: Tensor, gate: Tensor, keep: Tensor | null, { B, N, D }: Dims): Tensor {
  const out = empty(g.shape);
  const v = lanes(D), T = v === 4 ? "vec4<f32>" : "f32";
  gridKernel({
    name: "gated_residual_backward_branch",
    n: (B * N * D) / v,
    read: { G: [g, T], GATE: [gate, T], K: keep },
    write: { O: [out, T] },
    body: `let b = i / ${(N * D) / v}u;
  O[i] = ${keep ? "(G[i] * K[b])" : "G[i]"} * GATE[b * ${D / v}u + i % ${D / v}u];`,
  });
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
  gridKernel({
    name: "gated_residual_backward_gate",
    n: B * D,
    read: { G: g, BR: branch, K: keep },
    write: { O: out },
    body: `let b = i / ${D}u;
  let base = b * ${N * D}u + i % ${D}u;
  var acc = 0.0;
  for (var t = 0u; t < ${N}u; t++) {
    let j = base + t * ${D}u;
    acc += G[j] * BR[j];
  }
  O[i] = ${keep ? "acc * K[b]" : "acc"};`,
  });
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
