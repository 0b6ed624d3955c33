// Softmax over the last axis. One invocation per row: an online pass for the maximum and the sum
// of exponentials, then a pass that writes the normalised values; vec4 loads when the row length
// is a multiple of 4. The backward pass reuses the saved output: dx = y ⊙ (g − Σ g⊙y).

import { record } from "./autograd.ts";
import { gridKernel } from "./grid_kernel.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";

const LOG2E = "1.4426950408889634";

// x [R, C] → y [R, C]
function softmaxKernel(x: Tensor, out: Tensor, rows: number, C: number): void {
  const v4 = C % 4 === 0;
  const T = v4 ? "vec4<f32>" : "f32";
  const n = v4 ? C / 4 : C;
  // e^x = 2^(x·log2 e); x − max is formed before scaling, so large logits lose no precision
  const rowMax = v4 ? "max(max(t.x, t.y), max(t.z, t.w))" : "t";
  const rowSum = v4
    ? `dot(exp2((t - mn) * ${LOG2E}), vec4<f32>(1.0))`
    : `exp2((t - mn) * ${LOG2E})`;
  gridKernel({
    name: v4 ? "softmax_v4" : "softmax",
    n: rows,
    read: { X: [x, T] },
    write: { O: [out, T] },
    body: `let base = i * ${n}u;
  var m = -1.0e30;
  var l = 0.0;
  for (var c = 0u; c < ${n}u; c++) {
    let t = X[base + c];
    let mn = max(m, ${rowMax});
    l = l * exp2((m - mn) * ${LOG2E}) + ${rowSum};
    m = mn;
  }
  // a row of −∞ (every entry masked) sums to 0: zeros, as attention gives, not 0·∞ = NaN
  let inv = select(0.0, 1.0 / l, l > 0.0);
  for (var c = 0u; c < ${n}u; c++) {
    O[base + c] = exp2((X[base + c] - m) * ${LOG2E}) * inv;
  }`,
  });
}

// y [R, C], g [R, C] → dx [R, C]
function softmaxBackwardKernel(y: Tensor, g: Tensor, dx: Tensor, rows: number, C: number): void {
  const v4 = C % 4 === 0;
  const T = v4 ? "vec4<f32>" : "f32";
  const n = v4 ? C / 4 : C;
  const dotE = v4 ? "dot(Y[base + c], G[base + c])" : "Y[base + c] * G[base + c]";
  gridKernel({
    name: v4 ? "softmax_backward_v4" : "softmax_backward",
    n: rows,
    read: { Y: [y, T], G: [g, T] },
    write: { DX: [dx, T] },
    body: `let base = i * ${n}u;
  var s = 0.0;
  for (var c = 0u; c < ${n}u; c++) {
    s += ${dotE};
  }
  for (var c = 0u; c < ${n}u; c++) {
    DX[base + c] = Y[base + c] * (G[base + c] - ${T}(s));
  }`,
  });
}

/** Softmax over the last axis of x (any rank ≥ 1). */
export function softmax(x: Tensor): Tensor {
  if (x.rank < 1 || x.dtype !== "f32") {
    throw new Error(`softmax: need an f32 tensor of rank ≥ 1, got ${x}`);
  }
  const C = x.shape[x.rank - 1];
  if (C === 0) throw new Error(`softmax: empty last axis in ${shapeStr(x.shape)}`);
  const rows = x.size / C;
  const out = empty(x.shape);
  softmaxKernel(x, out, rows, C);
  return record(out, "softmax", [x], (g) => {
    const dx = empty(x.shape);
    softmaxBackwardKernel(out, g, dx, rows, C);
    return [dx];
  }, [out]);
}
