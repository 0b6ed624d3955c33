// Shape ops: reshape (a view, no copy), permute, concat and split along an axis.

import { record, recordMulti } from "./autograd.ts";
import { copyBuffer } from "./runtime.ts";
import { device } from "./device.ts";
import { gridKernel } from "./grid_kernel.ts";
import { byteSize, empty, numel, shapeStr, strides, Tensor } from "./tensor.ts";

/** Same data, another shape; one dimension may be -1. */
export function reshape(x: Tensor, shape: number[]): Tensor {
  const known = shape.filter((d) => d !== -1);
  const fill = x.size / numel(known);
  const s = shape.map((d) => (d === -1 ? fill : d));
  if (numel(s) !== x.size || shape.filter((d) => d === -1).length > 1) {
    throw new Error(`reshape: cannot view ${shapeStr(x.shape)} as ${shapeStr(shape)}`);
  }
  const out = new Tensor(s, x.dtype, x);
  return record(out, "reshape", [x], (g) => [reshape(g, [...x.shape])], []);
}

// These copy 32-bit words, one a value: an f16 tensor packs two values in a word, so its copies
// would move twice its bytes (f16 weights only ever enter linear layers).
function notHalf(op: string, ...xs: Tensor[]): void {
  if (xs.some((x) => x.dtype === "f16")) throw new Error(`${op}: not for f16 tensors`);
}

/** Reorders axes: out.shape[k] = x.shape[perm[k]]. */
export function permute(x: Tensor, perm: number[]): Tensor {
  notHalf("permute", x);
  if (perm.length !== x.rank || [...perm].sort().some((p, k) => p !== k)) {
    throw new Error(`permute: [${perm}] is not a permutation of ${x.rank} axes`);
  }
  const outShape = perm.map((p) => x.shape[p]);
  const out = empty(outShape, x.dtype);
  const inSt = strides(x.shape);
  const outSt = strides(outShape);
  const idx = perm.map((p, k) => `((i / ${outSt[k]}u) % ${outShape[k]}u) * ${inSt[p]}u`)
    .join(" + ") || "0u";
  gridKernel({
    name: "permute",
    n: out.size,
    read: { X: [x, "u32"] },
    write: { O: [out, "u32"] },
    body: `O[i] = X[${idx}];`,
  });
  const inv: number[] = [];
  perm.forEach((p, k) => (inv[p] = k));
  return record(out, "permute", [x], (g) => [permute(g, inv)], []);
}

/** Swaps the last two axes. */
export function transpose(x: Tensor): Tensor {
  const perm = x.shape.map((_, k) => k);
  perm[x.rank - 1] = x.rank - 2;
  perm[x.rank - 2] = x.rank - 1;
  return permute(x, perm);
}

// Copies a block [outer, len, inner] of `src` into `dst` at offset `at` along the middle axis.
function copyBlock(
  src: Tensor,
  dst: Tensor,
  outer: number,
  len: number,
  inner: number,
  dstLen: number,
  at: number,
  reverse: boolean,
): void {
  // forward: src block → dst slice; reverse: dst slice → src block (for split)
  // S = [n, len, inner, dstLen, at]
  const a = `(i / (S[1] * S[2])) * (S[3] * S[2]) + (S[4] + (i / S[2]) % S[1]) * S[2] + i % S[2]`;
  gridKernel({
    name: reverse ? "split" : "concat",
    n: outer * len * inner,
    read: { Src: [src, "u32"] },
    write: { Dst: [dst, "u32"] },
    body: reverse ? `Dst[i] = Src[${a}];` : `Dst[${a}] = Src[i];`,
    sizes: [len, inner, dstLen, at],
  });
}

/** Records a copy of n elements of src from `from` to dst at `to` (a copy command, no kernel). */
function copyRange(src: Tensor, from: number, dst: Tensor, to: number, n: number): void {
  const a = src.range, b = dst.range;
  copyBuffer(a.buffer, b.buffer, n * 4, a.offset + from * 4, b.offset + to * 4);
}

function axisOf(x: Tensor, axis: number): number {
  const a = axis < 0 ? axis + x.rank : axis;
  if (a < 0 || a >= x.rank) throw new Error(`axis ${axis} out of range for ${shapeStr(x.shape)}`);
  return a;
}

/** Concatenates along an axis. */
export function concat(xs: Tensor[], axis: number): Tensor {
  notHalf("concat", ...xs);
  const a = axisOf(xs[0], axis);
  const ref = xs[0].shape;
  for (const x of xs) {
    if (x.rank !== ref.length || x.shape.some((d, k) => k !== a && d !== ref[k])) {
      throw new Error(`concat: ${shapeStr(x.shape)} does not match ${shapeStr(ref)} off axis ${a}`);
    }
  }
  const total = xs.reduce((s, x) => s + x.shape[a], 0);
  const outShape = [...ref];
  outShape[a] = total;
  const out = empty(outShape, xs[0].dtype);
  const outer = numel(ref.slice(0, a));
  const inner = numel(ref.slice(a + 1));
  let at = 0;
  const offsets: number[] = [];
  for (const x of xs) {
    offsets.push(at);
    // along the first non-trivial axis each input is one contiguous range of the output
    if (outer === 1) copyRange(x, 0, out, at * inner, x.size);
    else copyBlock(x, out, outer, x.shape[a], inner, total, at, false);
    at += x.shape[a];
  }
  return record(
    out,
    "concat",
    xs,
    (g) => xs.map((x, k) => slice(g, a, offsets[k], x.shape[a])),
    [],
  );
}

/** x[..., start:start+len, ...] along an axis (a copy). */
export function slice(x: Tensor, axis: number, start: number, len: number): Tensor {
  notHalf("slice", x);
  const a = axisOf(x, axis);
  if (start < 0 || len < 0 || start + len > x.shape[a]) {
    throw new Error(`slice: ${start}..${start + len} is outside axis ${a} of ${shapeStr(x.shape)}`);
  }
  const outShape = [...x.shape];
  outShape[a] = len;
  const out = empty(outShape, x.dtype);
  const outer = numel(x.shape.slice(0, a));
  const inner = numel(x.shape.slice(a + 1));
  copyBlock(x, out, outer, len, inner, x.shape[a], start, true);
  return record(out, "slice", [x], (g) => {
    // pad g with zeros back to x's shape
    const gx = empty(x.shape);
    zero(gx);
    copyBlock(g, gx, outer, len, inner, x.shape[a], start, false);
    return [gx];
  }, []);
}

/** Splits along an axis into pieces of the given sizes (one op: its backward is one concat). */
export function split(x: Tensor, sizes: number[], axis: number): Tensor[] {
  notHalf("split", x);
  const a = axisOf(x, axis);
  if (sizes.reduce((s, d) => s + d, 0) !== x.shape[a]) {
    throw new Error(`split: sizes [${sizes}] do not add up to axis ${a} of ${shapeStr(x.shape)}`);
  }
  const outer = numel(x.shape.slice(0, a));
  const inner = numel(x.shape.slice(a + 1));
  const starts: number[] = [];
  let at = 0;
  // along the first non-trivial axis each piece is one contiguous range of x: a view where the
  // adapter can bind it there, else a recorded copy; neither needs a kernel
  const align = device().limits.minStorageBufferOffsetAlignment;
  const pieces = sizes.map((len) => {
    const shape = [...x.shape];
    shape[a] = len;
    let p: Tensor;
    if (outer === 1) {
      const start = at * inner;
      if ((x.range.offset + start * 4) % align === 0) p = x.rangeView(start, shape);
      else {
        p = empty(shape, x.dtype);
        copyRange(x, start, p, 0, len * inner);
      }
    } else {
      p = empty(shape, x.dtype);
      copyBlock(x, p, outer, len, inner, x.shape[a], at, true);
    }
    starts.push(at);
    at += len;
    return p;
  });
  return recordMulti(pieces, "split", [x], (gs) => {
    const gx = empty(x.shape);
    if (gs.some((g) => !g)) zero(gx);
    gs.forEach((g, k) => {
      if (!g) return;
      if (outer === 1) copyRange(g, 0, gx, starts[k] * inner, sizes[k] * inner);
      else copyBlock(g, gx, outer, sizes[k], inner, x.shape[a], starts[k], false);
    });
    return [gx];
  }, []);
}

/** Splits along an axis into n equal pieces. */
export function chunk(x: Tensor, n: number, axis: number): Tensor[] {
  const a = axisOf(x, axis);
  if (x.shape[a] % n !== 0) {
    throw new Error(`chunk: axis ${a} of ${shapeStr(x.shape)} does not divide into ${n}`);
  }
  return split(x, Array(n).fill(x.shape[a] / n), a);
}

export function zero(t: Tensor): void {
  const words = byteSize(t.size, t.dtype) / 4; // an f16 tensor packs two values a word
  gridKernel({ name: "zero", n: words, write: { O: [t, "u32"] }, body: "O[i] = 0u;", sizes: [] });
}
