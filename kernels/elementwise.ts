// Elementwise ops: binary ops with NumPy broadcasting, scalar ops, and the pointwise activations,
// each a forward and a backward expression (the UNARY table). Kernels without broadcasting serve
// every size with one pipeline; a broadcast is specialised to its shapes (strides are constants).

import { record } from "./autograd.ts";
import { gridKernel } from "./grid_kernel.ts";
import { empty, type Shape, shapeStr, type Tensor } from "./tensor.ts";
import { f32lit } from "./wgsl.ts";
import { sumTo } from "./reduce.ts";
import { binaryKernel as sameShapeKernel } from "./vector.ts";

export function broadcastShape(a: Shape, b: Shape): number[] {
  const n = Math.max(a.length, b.length);
  const out: number[] = [];
  for (let i = 0; i < n; i++) {
    const da = a[a.length - n + i] ?? 1;
    const db = b[b.length - n + i] ?? 1;
    if (da !== db && da !== 1 && db !== 1) {
      throw new Error(`shapes ${shapeStr(a)} and ${shapeStr(b)} do not broadcast`);
    }
    out.push(da === 1 ? db : da);
  }
  return out;
}

/** WGSL expression for the flat index into a tensor of `shape` broadcast to `out`, from flat `i`. */
function broadcastIndex(shape: Shape, out: Shape): string {
  const n = out.length;
  const padded = [...Array(n - shape.length).fill(1), ...shape];
  if (padded.every((d, k) => d === out[k])) return "i";
  const terms: string[] = [];
  let inStride = 1;
  const outStrides: number[] = [];
  let s = 1;
  for (let k = n - 1; k >= 0; k--) {
    outStrides[k] = s;
    s *= out[k];
  }
  for (let k = n - 1; k >= 0; k--) {
    if (padded[k] !== 1) {
      const coord = `((i / ${outStrides[k]}u) % ${out[k]}u)`;
      terms.push(inStride === 1 ? coord : `${coord} * ${inStride}u`);
    }
    inStride *= padded[k];
  }
  return terms.length ? terms.join(" + ") : "0u";
}

type BinOp = "add" | "sub" | "mul" | "div";
const BIN_EXPR: Record<BinOp, string> = { add: "a + b", sub: "a - b", mul: "a * b", div: "a / b" };

function binaryKernel(op: BinOp, a: Tensor, b: Tensor, out: Tensor): void {
  const ia = broadcastIndex(a.shape, out.shape), ib = broadcastIndex(b.shape, out.shape);
  // no broadcasting (the common case): one pipeline for every size
  if (ia === "i" && ib === "i") return sameShapeKernel(op, BIN_EXPR[op], a, b, out);
  gridKernel({
    name: `${op}_broadcast`,
    n: out.size,
    read: { A: a, B: b },
    write: { O: out },
    body: `let a = A[${ia}];
  let b = B[${ib}];
  O[i] = ${BIN_EXPR[op]};`,
  });
}

function binary(op: BinOp, a: Tensor, b: Tensor): Tensor {
  const out = empty(broadcastShape(a.shape, b.shape));
  binaryKernel(op, a, b, out);
  return record(out, op, [a, b], (g) => {
    const ga = a.requiresGrad ? gradA(op, g, a, b) : null;
    const gb = b.requiresGrad ? gradB(op, g, a, b) : null;
    return [ga, gb];
  }, savedBy(op, a, b));
}

// add and sub read only the gradient; a·b needs the other factor; a/b needs b, and a for db
function savedBy(op: BinOp, a: Tensor, b: Tensor): (Tensor | null)[] {
  switch (op) {
    case "add":
    case "sub":
      return [];
    case "mul":
      return [a.requiresGrad ? b : null, b.requiresGrad ? a : null];
    case "div":
      return [b, b.requiresGrad ? a : null];
  }
}

function gradA(op: BinOp, g: Tensor, a: Tensor, b: Tensor): Tensor {
  switch (op) {
    case "add":
    case "sub":
      return sumTo(g, a.shape);
    case "mul":
      return reduceOwned(binary("mul", g, b), a.shape);
    case "div":
      return reduceOwned(binary("div", g, b), a.shape);
  }
}

function gradB(op: BinOp, g: Tensor, a: Tensor, b: Tensor): Tensor {
  switch (op) {
    case "add":
      return sumTo(g, b.shape);
    case "sub":
      return reduceOwned(scale(g, -1), b.shape);
    case "mul":
      return reduceOwned(binary("mul", g, a), b.shape);
    case "div":
      // d(a/b)/db = -a/b² = -(a/b)/b (the temporaries go with the backward's scope)
      return scale(sumTo(binary("div", binary("mul", g, binary("div", a, b)), b), b.shape), -1);
  }
}

/** sumTo(t, shape), disposing t when a reduction made a new tensor. */
function reduceOwned(t: Tensor, shape: Shape): Tensor {
  const r = sumTo(t, shape);
  if (r !== t) t.dispose();
  return r;
}

/** a + b with broadcasting. */
export const add = (a: Tensor, b: Tensor): Tensor => binary("add", a, b);
/** a − b with broadcasting. */
export const sub = (a: Tensor, b: Tensor): Tensor => binary("sub", a, b);
/** a · b with broadcasting. */
export const mul = (a: Tensor, b: Tensor): Tensor => binary("mul", a, b);
/** a / b with broadcasting. */
export const div = (a: Tensor, b: Tensor): Tensor => binary("div", a, b);

// ---- unary maps: y = f(x), dx = g·f'(x) --------------------------------------------------------

interface UnaryDef {
  /** WGSL expression of x */
  fwd: string;
  /** WGSL expression of x and g for the input gradient */
  bwd: string;
  /** helper functions */
  lib?: string;
}

// tanh-GELU (Hendrycks & Gimpel 2016): 0.5·x·(1 + tanh(√(2/π)(x + 0.044715x³)))
const GELU_TANH_LIB = `
fn gelu_t(x: f32) -> f32 { let u = 0.7978845608028654 * (x + 0.044715 * x * x * x); return 0.5 * x * (1.0 + tanh_c(u)); }
fn gelu_t_d(x: f32) -> f32 {
  let u = 0.7978845608028654 * (x + 0.044715 * x * x * x);
  let th = tanh_c(u);
  return 0.5 * (1.0 + th) + 0.5 * x * (1.0 - th * th) * 0.7978845608028654 * (1.0 + 3.0 * 0.044715 * x * x);
}`;
// WGSL's tanh overflows to NaN on some drivers for large |x|; clamp where tanh is ±1 in f32.
const TANH_LIB = `fn tanh_c(x: f32) -> f32 { return tanh(clamp(x, -15.0, 15.0)); }`;
// erf by Abramowitz–Stegun 7.1.26 is only 1.5e-7 absolute; use a higher-accuracy rational form
// (W. J. Cody's erf on |x| < 0.5, erfc continued otherwise) via the complementary error function.
const ERF_LIB = `
fn erf_c(x: f32) -> f32 {
  // Numerical Recipes erfc (Chebyshev), relative error < 1.2e-7 everywhere.
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}
fn gelu_e(x: f32) -> f32 { return 0.5 * x * (1.0 + erf_c(x * 0.7071067811865476)); }
fn gelu_e_d(x: f32) -> f32 {
  return 0.5 * (1.0 + erf_c(x * 0.7071067811865476)) + x * 0.3989422804014327 * exp(-0.5 * x * x);
}`;

/** tanh-GELU as WGSL functions gelu_t (f32) and gelu_t4 (vec4), for kernels that fuse it. */
export const GELU_TANH_WGSL = TANH_LIB + GELU_TANH_LIB + `
fn gelu_t4(v: vec4<f32>) -> vec4<f32> { return vec4<f32>(gelu_t(v.x), gelu_t(v.y), gelu_t(v.z), gelu_t(v.w)); }`;

const UNARY: Record<string, UnaryDef> = {
  gelu_tanh: { fwd: "gelu_t(x)", bwd: "g * gelu_t_d(x)", lib: TANH_LIB + GELU_TANH_LIB },
  gelu_erf: { fwd: "gelu_e(x)", bwd: "g * gelu_e_d(x)", lib: ERF_LIB },
  silu: {
    fwd: "x / (1.0 + exp(-x))",
    bwd: "g * (1.0 / (1.0 + exp(-x))) * (1.0 + x * (1.0 - 1.0 / (1.0 + exp(-x))))",
  },
  tanh: { fwd: "tanh_c(x)", bwd: "g * (1.0 - tanh_c(x) * tanh_c(x))", lib: TANH_LIB },
  relu: { fwd: "max(x, 0.0)", bwd: "select(0.0, g, x > 0.0)" },
  exp: { fwd: "exp(x)", bwd: "g * exp(x)" },
  square: { fwd: "x * x", bwd: "2.0 * g * x" },
  sqrt: { fwd: "sqrt(x)", bwd: "0.5 * g / sqrt(x)" },
};

// x (and g) [n] → out [n] = expr(x, g); one pipeline for every size
function mapKernel(name: string, expr: string, lib: string, inputs: Tensor[], out: Tensor): void {
  const [x, g] = inputs;
  gridKernel({
    name,
    n: out.size,
    read: { X: x, G: g },
    write: { O: out },
    body: `let x = X[i];${g ? " let g = G[i];" : ""}
  O[i] = ${expr};`,
    lib,
    sizes: [],
  });
}

export type UnaryName = keyof typeof UNARY;

export function unary(name: UnaryName, x: Tensor): Tensor {
  const def = UNARY[name];
  const out = empty(x.shape);
  mapKernel(name, def.fwd, def.lib ?? "", [x], out);
  return record(out, name, [x], (g) => {
    const gx = empty(x.shape);
    mapKernel(`${name}_backward`, def.bwd, def.lib ?? "", [x, g], gx);
    return [gx];
  });
}

/** g · gelu'(x) for the tanh-GELU, no autograd (the backward of a product with a fused GELU). */
export function geluTanhBackward(x: Tensor, g: Tensor): Tensor {
  const def = UNARY.gelu_tanh;
  const out = empty(x.shape);
  mapKernel("gelu_tanh_backward", def.bwd, def.lib ?? "", [x, g], out);
  return out;
}

/** tanh-approximated GELU (PixArt's MLP). */
export const geluTanh = (x: Tensor): Tensor => unary("gelu_tanh", x);
/** exact erf GELU (the text encoder's MLP). */
export const geluErf = (x: Tensor): Tensor => unary("gelu_erf", x);
export const silu = (x: Tensor): Tensor => unary("silu", x);

/** x·s + c for constants s, c. */
export function scale(x: Tensor, s: number, c = 0): Tensor {
  const out = empty(x.shape);
  mapKernel("scale", `x * ${f32lit(s)} + ${f32lit(c)}`, "", [x], out);
  return record(out, "scale", [x], (g) => [scale(g, s)], []);
}
