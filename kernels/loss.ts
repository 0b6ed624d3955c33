// Mean squared error. The forward is a deterministic two-stage reduction: P workgroups each sum
// a contiguous chunk in workgroup memory, then one workgroup sums the P partials (one stage when
// P = 1). The backward is one fused pointwise kernel for pred and target.

import { record } from "./autograd.ts";
import { dispatch, kernel } from "./runtime.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";
import { ENTRY, f32lit, flatIndex, grid1d } from "./wgsl.ts";

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
  bufs: GPUBuffer[],
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
  dispatch(kernel(name, code), [...bufs, out.buffer], parts);
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
    reduceKernel("mse", ["P", "T"], sq, [pred.buffer, target.buffer], out, n, 1, 1 / n);
  } else {
    const partial = empty([parts]);
    reduceKernel("mse_partial", ["P", "T"], sq, [pred.buffer, target.buffer], partial, n, parts, 1);
    reduceKernel("mse_final", ["X"], "X[k]", [partial.buffer], out, parts, 1, 1 / n);
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
  const outs: [string, Tensor][] = [];
  if (gp) outs.push(["DP", gp]);
  if (gt) outs.push(["DT", gt]);
  if (!outs.length) return;
  const [gx, gy] = grid1d(n);
  const decls = outs.map(([nm], k) =>
    `@group(0) @binding(${3 + k}) var<storage, read_write> ${nm}: array<f32>;`
  ).join("\n");
  const code = `
@group(0) @binding(0) var<storage, read> P: array<f32>;
@group(0) @binding(1) var<storage, read> T: array<f32>;
@group(0) @binding(2) var<storage, read> G: array<f32>;
${decls}
${ENTRY()} {
  ${flatIndex(gx)}
  if (i >= ${n}u) { return; }
  let d = (P[i] - T[i]) * G[0] * ${f32lit(2 / n)};
  ${gp ? "DP[i] = d;" : ""}
  ${gt ? "DT[i] = -d;" : ""}
}`;
  dispatch(
    kernel("mse_backward", code),
    [pred.buffer, target.buffer, g.buffer, ...outs.map(([, t]) => t.buffer)],
    gx,
    gy,
  );
}
