// Mean squared error. The forward is a deterministic two-stage reduction: P workgroups each sum
// a contiguous chunk in workgroup memory, then one workgroup sums the P partials (one stage when
// P = 1). The backward is one fused pointwise kernel for pred and target.

import { record } from "./autograd.ts";
import { gridKernel } from "./grid_kernel.ts";
import { type Binding, dispatch, kernel } from "./runtime.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";
import { ENTRY, f32lit } from "./wgsl.ts";

const WG_R = 256;
/** elements per workgroup in the first stage, before the number of workgroups is capped */
const CHUNK = 4096;
const MAX_PARTIALS = 256;

/**
 * Records O[p] = mul · Σ_{k in chunk p} expr(k), p < parts, over n terms; `decls` binds the
 * inputs from binding 0, the output follows them.
 */
function reduceKernel(
  name: string,
  decls: string[],
  expr: string,
  bufs: Binding[],
  out: Tensor,
  n: number,
  parts: number,
  mul: number,
): void {
  const chunk = Math.ceil(n / parts);
  const inputs = decls.map((d, k) =>
    `@group(0) @binding(${k}) var<storage, read> ${d}: array<f32>;`
  )
    .join("\n");
  const code = `
${inputs}
@group(0) @binding(${decls.length}) var<storage, read_write> O: array<f32>;
var<workgroup> red: array<f32, ${WG_R}>;
${ENTRY(WG_R)} {
  let p = wid.x;
  let t = lid.x;
  let start = p * ${chunk}u;
  let stop = min(start + ${chunk}u, ${n}u);
  var acc = 0.0;
  for (var k = start + t; k < stop; k += ${WG_R}u) { acc += ${expr}; }
  red[t] = acc;
  workgroupBarrier();
  for (var s = ${WG_R / 2}u; s > 0u; s = s >> 1u) {
    if (t < s) { red[t] = red[t] + red[t + s]; }
    workgroupBarrier();
  }
  if (t == 0u) { O[p] = red[0] * ${f32lit(mul)}; }
}`;
  dispatch(kernel(name, code), [...bufs, out], parts);
}

/** mean((pred − target)²) over all elements → a scalar (shape []). Gradients for both inputs. */
export function mseLoss(pred: Tensor, target: Tensor): Tensor {
  if (
    pred.size !== target.size || pred.rank !== target.rank ||
    pred.shape.some((d, k) => d !== target.shape[k])
  ) {
    throw new Error(`mseLoss: shapes differ: ${shapeStr(pred.shape)} vs ${shapeStr(target.shape)}`);
  }
  const n = pred.size;
  if (n === 0) throw new Error("mseLoss: empty tensors");
  const out = empty([]);
  const parts = Math.min(MAX_PARTIALS, Math.ceil(n / CHUNK));
  const sq = "(P[k] - T[k]) * (P[k] - T[k])";
  // pred, target [n] → loss [] (one stage) or partials [parts] → loss []
  if (parts === 1) {
    reduceKernel("mse", ["P", "T"], sq, [pred, target], out, n, 1, 1 / n);
  } else {
    const partial = empty([parts]);
    reduceKernel("mse_partial", ["P", "T"], sq, [pred, target], partial, n, parts, 1);
    reduceKernel("mse_final", ["X"], "X[k]", [partial], out, parts, 1, 1 / n);
    partial.dispose();
  }
  return record(out, "mse_loss", [pred, target], (g) => {
    const gp = pred.requiresGrad ? empty(pred.shape) : null;
    const gt = target.requiresGrad ? empty(target.shape) : null;
    mseBackward(pred, target, g, gp, gt, n);
    return [gp, gt];
  });
}

// pred, target [n], g [] → dpred = g·2(p − t)/n, dtarget = −dpred (each only when wanted)
function mseBackward(
  pred: Tensor,
  target: Tensor,
  g: Tensor,
  gp: Tensor | null,
  gt: Tensor | null,
  n: number,
): void {
  if (!gp && !gt) return;
  gridKernel({
    name: "mse_backward",
    n,
    read: { P: pred, T: target, G: g },
    write: { DP: gp, DT: gt },
    body: `let d = (P[i] - T[i]) * G[0] * ${f32lit(2 / n)};
  ${gp ? "DP[i] = d;" : ""}
  ${gt ? "DT[i] = -d;" : ""}`,
  });
}

/**
 * Softmax cross-entropy, mean over rows: logits [B, K] (f32), labels [B] (i32) → a scalar (shape
 * []), −(1/B)·Σ_b log softmax(logits_b)[label_b]. Gradient for the logits only:
 * (softmax − onehot)/B. Labels must lie in [0, K); a row whose label does not gets a NaN loss (so
 * the mistake shows in the mean) and no gradient.
 */
export function crossEntropy(logits: Tensor, labels: Tensor): Tensor {
  if (logits.rank !== 2 || logits.dtype !== "f32") {
    throw new Error(`crossEntropy: logits must be f32 [B, K], got ${logits}`);
  }
  const [B, K] = logits.shape;
  if (labels.dtype !== "i32" || labels.size !== B || labels.rank !== 1) {
    throw new Error(`crossEntropy: labels must be i32 [${B}], got ${labels}`);
  }
  if (B === 0 || K === 0) throw new Error(`crossEntropy: empty logits ${shapeStr(logits.shape)}`);
  // logits [B, K], labels [B] → per-row losses [B] → mean []
  const rows = empty([B]);
  crossEntropyRows(logits, labels, rows, B, K);
  const out = empty([]);
  const parts = Math.min(MAX_PARTIALS, Math.ceil(B / CHUNK));
  if (parts === 1) {
    reduceKernel("cross_entropy_mean", ["X"], "X[k]", [rows], out, B, 1, 1 / B);
  } else {
    const partial = empty([parts]);
    reduceKernel("cross_entropy_partial", ["X"], "X[k]", [rows], partial, B, parts, 1);
    reduceKernel("cross_entropy_final", ["X"], "X[k]", [partial], out, parts, 1, 1 / B);
    partial.dispose();
  }
  rows.dispose();
  // g [] → dlogits [B, K]
  return record(out, "cross_entropy", [logits, labels], (g) => {
    const dl = empty(logits.shape);
    crossEntropyBackward(logits, labels, g, dl, B, K);
    return [dl, null];
  });
}

const LOG2E = "1.4426950408889634";
const LN2 = "0.6931471805599453";

// The row's maximum and Σ exp(x − max), online in one pass (as softmax.ts does).
const ROW_STATS = (K: number) => `
  let base = r * ${K}u;
  var m = -1.0e30;
  var l = 0.0;
  for (var j = 0u; j < ${K}u; j++) {
    let t = X[base + j];
    let mn = max(m, t);
    l = l * exp2((m - mn) * ${LOG2E}) + exp2((t - mn) * ${LOG2E});
    m = mn;
  }`;

// logits [B, K], labels [B] → row losses [B]: max + log Σ exp(x − max) − x[label]
function crossEntropyRows(x: Tensor, labels: Tensor, out: Tensor, B: number, K: number): void {
  gridKernel({
    name: "cross_entropy",
    n: B,
    read: { X: x, Y: labels },
    write: { O: out },
    body: `let r = i;
  ${ROW_STATS(K)}
  let y = Y[r];
  if (y < 0 || y >= ${K}) {
    O[r] = bitcast<f32>(0x7fc00000u);
    return;
  }
  O[r] = m + log2(l) * ${LN2} - X[base + u32(y)];`,
  });
}

// logits [B, K], labels [B], g [] → dlogits [B, K] = g·(softmax − onehot)/B
function crossEntropyBackward(
  x: Tensor,
  labels: Tensor,
  g: Tensor,
  dx: Tensor,
  B: number,
  K: number,
): void {
  gridKernel({
    name: "cross_entropy_backward",
    n: B,
    read: { X: x, Y: labels, G: g },
    write: { DX: dx },
    body: `let r = i;
  ${ROW_STATS(K)}
  let y = Y[r];
  let valid = y >= 0 && y < ${K};
  let s = G[0] * ${f32lit(1 / B)} / l;
  for (var j = 0u; j < ${K}u; j++) {
    let p = exp2((X[base + j] - m) * ${LOG2E}) * s;
    let hot = select(0.0, G[0] * ${f32lit(1 / B)}, i32(j) == y);
    DX[base + j] = select(0.0, p - hot, valid);
  }`,
  });
}
