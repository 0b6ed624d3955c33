// Whole-tensor kernels without autograd: fill, copy, the sum of two tensors of one shape,
// y += a·x and the moving average. They are what autograd's backward itself runs (seeding,
// copying and accumulating gradients) and what optimisers and EMA run in place, so this module
// imports no op that records: autograd.ts imports it, and elementwise.ts builds on both.

import { gridKernel } from "./grid_kernel.ts";
import { byteSize, empty, type Shape, shapeStr, type Tensor } from "./tensor.ts";
import { f32lit } from "./wgsl.ts";

/** Fills a new tensor with a constant. */
export function full(shape: Shape, value: number): Tensor {
  const out = empty(shape);
  fill(out, value);
  return out;
}

// t [n] ← value
export function fill(t: Tensor, value: number): void {
  gridKernel({
    name: "fill",
    n: t.size,
    write: { O: t },
    body: `O[i] = ${f32lit(value)};`,
    sizes: [],
  });
}

/** A copy (bits, any dtype). */
export function copy(x: Tensor): Tensor {
  const out = empty(x.shape, x.dtype);
  // x [n] → out [n], as 32-bit words (an f16 tensor packs two values a word)
  gridKernel({
    name: "copy",
    n: byteSize(x.size, x.dtype) / 4,
    read: { X: [x, "u32"] },
    write: { O: [out, "u32"] },
    body: "O[i] = X[i];",
    sizes: [],
  });
  return out;
}

/** a + b for two tensors of one shape (the kernel of elementwise.ts `add` without broadcasting). */
export function plus(a: Tensor, b: Tensor): Tensor {
  if (a.size !== b.size) throw new Error(`plus: ${shapeStr(a.shape)} + ${shapeStr(b.shape)}`);
  const out = empty(a.shape);
  binaryKernel("add", "a + b", a, b, out);
  return out;
}

/** O = expr(a, b) over tensors of one size; one pipeline for every size. */
export function binaryKernel(name: string, expr: string, a: Tensor, b: Tensor, out: Tensor): void {
  gridKernel({
    name,
    n: out.size,
    read: { A: a, B: b },
    write: { O: out },
    body: `let a = A[i];
  let b = B[i];
  O[i] = ${expr};`,
    sizes: [],
  });
}

/** into += x (in place): gradient accumulation. */
export function accumulate(into: Tensor, x: Tensor): void {
  if (into.size !== x.size) {
    throw new Error(`accumulate: ${shapeStr(x.shape)} into ${shapeStr(into.shape)}`);
  }
  axpy(into, x, 1);
}

/** y += a·x in place. */
export function axpy(y: Tensor, x: Tensor, a: number): void {
  gridKernel({
    name: "axpy",
    n: y.size,
    read: { X: x },
    write: { Y: y },
    body: `Y[i] = Y[i] + ${f32lit(a)} * X[i];`,
    sizes: [],
  });
}

/**
 * y += w·(x − y) in place: an exponential moving average. w is read from a one-element tensor,
 * so a weight that changes every step compiles nothing new.
 */
export function lerpInPlace(y: Tensor, x: Tensor, w: Tensor): void {
  if (y.size !== x.size) {
    throw new Error(`lerpInPlace: ${shapeStr(x.shape)} into ${shapeStr(y.shape)}`);
  }
  gridKernel({
    name: "lerp",
    n: y.size,
    read: { X: x, W: w },
    write: { Y: y },
    body: "Y[i] = Y[i] + W[0] * (X[i] - Y[i]);",
    sizes: [],
  });
}
