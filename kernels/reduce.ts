// Sum and mean over axes. One invocation per output element (and chunk of a long reduction)
// loops over the reduced elements; the index arithmetic is specialised to the shapes.

import { record } from "./autograd.ts";
import { gridKernel } from "./grid_kernel.ts";
import { empty, numel, type Shape, shapeStr, strides, Tensor } from "./tensor.ts";
import { f32lit } from "./wgsl.ts";

// sum over axes: [shape] → [shape without axes]
function sumKernel(x: Tensor, axes: number[], mul: number): Tensor {
  const keep = x.shape.map((_, k) => k).filter((k) => !axes.includes(k));
  const outShape = keep.map((k) => x.shape[k]);
  const out = empty(outShape);
  const st = strides(x.shape);
  const outSt = strides(outShape);
  // base offset of output element o in x
  const base = keep.map((k, j) => `((o / ${outSt[j]}u) % ${outShape[j]}u) * ${st[k]}u`)
    .join(" + ") || "0u";
  const rn = numel(axes.map((k) => x.shape[k]));
  const rShape = axes.map((k) => x.shape[k]);
  const rSt = strides(rShape);
  const roff = axes.map((k, j) => `((r / ${rSt[j]}u) % ${rShape[j]}u) * ${st[k]}u`).join(" + ") ||
    "0u";
  // Few outputs over a long reduction (a bias gradient: N outputs over B·T rows) would leave
  // most of the device idle: split the reduction into chunks, then add the partial sums.
  const chunks = out.size < 8192 && rn >= 512 ? Math.min(64, Math.floor(rn / 128)) : 1;
  const per = Math.ceil(rn / chunks);
  const partial = chunks > 1 ? empty([chunks, out.size]) : out;
  gridKernel({
    name: "sum",
    n: chunks * out.size,
    read: { X: x },
    write: { O: partial },
    body: `let chunk = i / ${out.size}u;
  let o = i % ${out.size}u;
  let base = ${base};
  var acc = 0.0;
  for (var r = chunk * ${per}u; r < min(${rn}u, (chunk + 1u) * ${per}u); r++) {
    acc += X[base + ${roff}];
  }
  O[i] = acc * ${f32lit(chunks > 1 ? 1 : mul)};`,
  });
  if (chunks === 1) return out;
  // [chunks, n] → [n]
  gridKernel({
    name: "sum_partials",
    n: out.size,
    read: { P: partial },
    write: { O: out },
    body: `var acc = 0.0;
  for (var c = 0u; c < ${chunks}u; c++) { acc += P[c * ${out.size}u + i]; }
  O[i] = acc * ${f32lit(mul)};`,
  });
  partial.dispose();
  return out;
}

function normAxes(x: Tensor, axes?: number | number[]): number[] {
  const list = axes === undefined ? x.shape.map((_, k) => k) : Array.isArray(axes) ? axes : [axes];
  const r = [...new Set(list.map((a) => (a < 0 ? a + x.rank : a)))].sort((a, b) => a - b);
  for (const a of r) {
    if (a < 0 || a >= x.rank) throw new Error(`axis ${a} out of range for ${shapeStr(x.shape)}`);
  }
  return r;
}

/** Sum over axes (all when omitted); the reduced axes are removed. */
export function sum(x: Tensor, axes?: number | number[]): Tensor {
  return reduceMean(x, normAxes(x, axes), false);
}

/** Mean over axes (all when omitted); the reduced axes are removed. */
export function mean(x: Tensor, axes?: number | number[]): Tensor {
  return reduceMean(x, normAxes(x, axes), true);
}

function reduceMean(x: Tensor, axes: number[], isMean: boolean): Tensor {
  const n = numel(axes.map((k) => x.shape[k]));
  const out = sumKernel(x, axes, isMean ? 1 / n : 1);
  return record(out, isMean ? "mean" : "sum", [x], (g) => {
    // broadcast g back over the reduced axes
    const gs = x.shape.map((d, k) => (axes.includes(k) ? 1 : d));
    return [broadcastTo(g, gs, x.shape, isMean ? 1 / n : 1)];
  }, []);
}

/** Repeats g (of shape gs, same rank as `shape` with 1s) to `shape`, times `mul`. No autograd. */
function broadcastTo(g: Tensor, gs: Shape, shape: Shape, mul: number): Tensor {
  const out = empty(shape);
  const st = strides(gs);
  const outSt = strides(shape);
  const idx =
    shape.map((_, k) => gs[k] === 1 ? "" : `((i / ${outSt[k]}u) % ${shape[k]}u) * ${st[k]}u`)
      .filter(Boolean).join(" + ") || "0u";
  gridKernel({
    name: "broadcast",
    n: out.size,
    read: { G: g },
    write: { O: out },
    body: `O[i] = G[${idx}] * ${f32lit(mul)};`,
  });
  return out;
}

/**
 * Sums a broadcast result back to `shape` (the gradient of broadcasting). Returns x itself when
 * the shapes already agree. No autograd.
 */
export function sumTo(x: Tensor, shape: Shape): Tensor {
  if (x.shape.length === shape.length && x.shape.every((d, k) => d === shape[k])) return x;
  const lead = x.rank - shape.length;
  const axes: number[] = [];
  for (let k = 0; k < x.rank; k++) {
    if (k < lead || (shape[k - lead] === 1 && x.shape[k] !== 1)) axes.push(k);
  }
  const r = sumKernel(x, axes, 1);
  const v = new Tensor(shape, "f32", r);
  r.dispose();
  return v;
}
