// Layer normalisation over the last axis, fused with its affine step: the adaLN modulation of a
// PixArt block, LN(x)·(1 + scale) + shift with per-sample shift/scale, and the ordinary affine
// LayerNorm, LN(x)·weight + bias. Both share the kernels below: the affine parameters come in
// G groups of D values, each group applying to R/G consecutive rows (G = B, R/G = N tokens for
// the modulation; G = 1 for LayerNorm).
//
// Forward: one invocation per row (CPU adapters pay dearly for workgroup barriers); mean, then
// the biased variance of the centred values (two passes, for accuracy). The row's mean and 1/σ
// are saved for the backward when a gradient is needed. Backward: one invocation per row for dx
// (fused), and one per (group, channel) summing the parameter gradients over the group's rows in
// a fixed order (deterministic, no atomics).

import { needsGrad, record } from "./autograd.ts";
import { gridKernel, type GridKernelSpec } from "./grid_kernel.ts";
import { empty, numel, shapeStr, type Tensor } from "./tensor.ts";
import { f32lit } from "./wgsl.ts";

/** How the multiplier is formed from the parameter: `1 + scale` (adaLN) or `weight` (affine). */
type MulMode = "onePlus" | "plain";

interface NormShape {
  rows: number;
  D: number;
  /** rows per parameter group */
  perGroup: number;
}

/** Rows per workgroup: one invocation normalises one row (no barriers, vec4 loads). */
const ROWS_WG = 64;

function mulExpr(mode: MulMode, idx: string): string {
  return mode === "onePlus" ? `(1.0 + M[${idx}])` : `M[${idx}]`;
}

/** vec4 loads where a row of D splits into them: the WGSL element type, and a value's lane sum. */
function lanes(D: number): { v: 1 | 4; T: string; sum: (e: string) => string } {
  return D % 4 === 0
    ? { v: 4, T: "vec4<f32>", sum: (e) => `dot(${e}, vec4<f32>(1.0))` }
    : { v: 1, T: "f32", sum: (e) => e };
}

/**
 * One invocation per row of D: the body sees its row, `base` (the row's first element) and
 * `pbase` (its parameter group's), in elements of the lane type, Dv = D / lanes and invD = 1/D.
 * Sizes come from S = [rows, D / lanes, perGroup, D], so one pipeline serves every shape.
 */
function rowKernel(
  name: string,
  s: NormShape,
  k: Pick<GridKernelSpec, "read" | "write" | "body">,
): void {
  gridKernel({
    name,
    n: s.rows,
    ...k,
    sizes: [s.D / lanes(s.D).v, s.perGroup, s.D],
    workgroup: ROWS_WG,
    body: `let row = i;
  let Dv = S[1];
  let invD = 1.0 / f32(S[3]);
  let base = row * Dv;
  let pbase = (row / S[2]) * Dv;
  ${k.body}`,
  });
}

// x [rows, D], mul/add [rows/perGroup, D] → y [rows, D] (+ stats [rows, 2] = mean, 1/σ)
function normForward(
  x: Tensor,
  mulP: Tensor,
  addP: Tensor,
  s: NormShape,
  mode: MulMode,
  eps: number,
  stats: Tensor | null,
): Tensor {
  const out = empty(x.shape);
  const { T, sum } = lanes(s.D);
  rowKernel(mode === "onePlus" ? "ln_modulate" : "layer_norm", s, {
    read: { X: [x, T], M: [mulP, T], A: [addP, T] },
    write: { O: [out, T], ST: stats },
    body: `var acc = ${T}(0.0);
  for (var d = 0u; d < Dv; d++) { acc += X[base + d]; }
  let mean = ${sum("acc")} * invD;
  var acc2 = ${T}(0.0);
  for (var d = 0u; d < Dv; d++) { let c = X[base + d] - mean; acc2 += c * c; }
  let rstd = inverseSqrt(${sum("acc2")} * invD + ${f32lit(eps)});
  for (var d = 0u; d < Dv; d++) {
    O[base + d] = (X[base + d] - mean) * rstd * ${mulExpr(mode, "pbase + d")} + A[pbase + d];
  }
  ${stats ? "ST[2u * row] = mean; ST[2u * row + 1u] = rstd;" : ""}`,
  });
  return out;
}

// x, g [rows, D], mul [rows/perGroup, D], stats [rows, 2] → dx [rows, D]
function normBackwardX(
  x: Tensor,
  g: Tensor,
  mulP: Tensor,
  stats: Tensor,
  s: NormShape,
  mode: MulMode,
): Tensor {
  const dx = empty(x.shape);
  const { T, sum } = lanes(s.D);
  rowKernel(mode === "onePlus" ? "ln_modulate_backward_x" : "layer_norm_backward_x", s, {
    read: { X: [x, T], G: [g, T], M: [mulP, T], ST: stats },
    write: { DX: [dx, T] },
    body: `let mean = ST[2u * row];
  let rstd = ST[2u * row + 1u];
  // dxh = g·mul; dx = rstd·(dxh − mean(dxh) − xh·mean(dxh·xh))
  var s1 = ${T}(0.0);
  var s2 = ${T}(0.0);
  for (var d = 0u; d < Dv; d++) {
    let xh = (X[base + d] - mean) * rstd;
    let dxh = G[base + d] * ${mulExpr(mode, "pbase + d")};
    s1 += dxh;
    s2 += dxh * xh;
  }
  let m1 = ${sum("s1")} * invD;
  let m2 = ${sum("s2")} * invD;
  for (var d = 0u; d < Dv; d++) {
    let xh = (X[base + d] - mean) * rstd;
    let dxh = G[base + d] * ${mulExpr(mode, "pbase + d")};
    DX[base + d] = rstd * (dxh - m1 - xh * m2);
  }`,
  });
  return dx;
}

// x, g [rows, D], stats [rows, 2] → dmul = Σ g·xh, dadd = Σ g, each [rows/perGroup, D]
function normBackwardParams(
  x: Tensor,
  g: Tensor,
  stats: Tensor,
  s: NormShape,
  mulShape: readonly number[],
  addShape: readonly number[],
): [Tensor, Tensor] {
  const { rows, D, perGroup } = s;
  const groups = rows / perGroup;
  const dm = empty(mulShape);
  const da = empty(addShape);
  gridKernel({
    name: "norm_backward_params",
    n: groups * D,
    read: { X: x, G: g, ST: stats },
    write: { DM: dm, DA: da },
    // S = [groups · D, D, perGroup]
    sizes: [D, perGroup],
    body: `let D = S[1];
  let d = i % D;
  let row0 = (i / D) * S[2];
  var am = 0.0;
  var aa = 0.0;
  for (var r = 0u; r < S[2]; r++) {
    let row = row0 + r;
    let gv = G[row * D + d];
    let xh = (X[row * D + d] - ST[2u * row]) * ST[2u * row + 1u];
    am += gv * xh;
    aa += gv;
  }
  DM[i] = am;
  DA[i] = aa;`,
  });
  return [dm, da];
}

/** Shared driver: forward, saved statistics, and the autograd record. */
function normOp(
  name: string,
  x: Tensor,
  mulP: Tensor,
  addP: Tensor,
  s: NormShape,
  mode: MulMode,
  eps: number,
): Tensor {
  const grad = needsGrad(x, mulP, addP);
  const stats = grad ? empty([s.rows, 2]) : null;
  const out = normForward(x, mulP, addP, s, mode, eps, stats);
  if (!stats) return out;
  return record(out, name, [x, mulP, addP], (g) => {
    const dx = x.requiresGrad ? normBackwardX(x, g, mulP, stats, s, mode) : null;
    let dm: Tensor | null = null, da: Tensor | null = null;
    if (mulP.requiresGrad || addP.requiresGrad) {
      [dm, da] = normBackwardParams(x, g, stats, s, mulP.shape, addP.shape);
    }
    return [dx, dm, da];
  }, [x, mulP, stats]);
}

/**
 * adaLN modulation: LN(x)·(1 + scale) + shift, LN over the last axis without affine parameters
 * (biased variance). x [B, N, D]; shift and scale [B, D] (any shape of B·D values ending in D,
 * e.g. [B, 1, D]), broadcast over the N tokens. Gradients for x, shift and scale.
 */
export function layerNormModulate(x: Tensor, shift: Tensor, scale: Tensor, eps = 1e-6): Tensor {
  if (x.rank !== 3) {
    throw new Error(`layerNormModulate: x must be [B, N, D], got ${shapeStr(x.shape)}`);
  }
  const [B, N, D] = x.shape;
  for (const [what, p] of [["shift", shift], ["scale", scale]] as const) {
    if (p.size !== B * D || p.shape[p.rank - 1] !== D) {
      throw new Error(
        `layerNormModulate: ${what} ${shapeStr(p.shape)} does not match [${B}, ${D}] for x ${
          shapeStr(x.shape)
        }`,
      );
    }
  }
  if (B * N === 0 || D === 0) return empty(x.shape);
  return normOp(
    "layer_norm_modulate",
    x,
    scale,
    shift,
    { rows: B * N, D, perGroup: N },
    "onePlus",
    eps,
  );
}

/**
 * LayerNorm with affine parameters over the last axis: LN(x)·weight + bias (biased variance).
 * x [..., D]; weight, bias [D]. Gradients for x, weight and bias.
 */
export function layerNorm(x: Tensor, weight: Tensor, bias: Tensor, eps = 1e-5): Tensor {
  if (x.rank < 1) throw new Error("layerNorm: x must have at least one axis");
  const D = x.shape[x.rank - 1];
  for (const [what, p] of [["weight", weight], ["bias", bias]] as const) {
    if (p.size !== D) {
      throw new Error(`layerNorm: ${what} ${shapeStr(p.shape)} does not match D = ${D}`);
    }
  }
  const rows = numel(x.shape.slice(0, -1));
  if (rows === 0 || D === 0) return empty(x.shape);
  return normOp("layer_norm", x, weight, bias, { rows, D, perGroup: rows }, "plain", eps);
}
