// Rows of a matrix taken in a given order, the rest of the output zero: the gather and scatter of
// masked training (MaskDiT, Zheng et al. 2023), which runs the early blocks on a subset of each
// image's tokens and puts them back in place for the last ones. With an injective `src` the
// backward is the same op with the map inverted, so both directions are one plain gather: no
// atomics, deterministic.

import { record } from "./autograd.ts";
import { gridKernel } from "./grid_kernel.ts";
import { empty, intTensor, shapeStr, type Tensor } from "./tensor.ts";

/**
 * x [R, D], src [M] (host integers, distinct, each in [0, R) or −1) → [M, D]:
 * out[m] = x[src[m]], or zeros where src[m] = −1. Gradient for x.
 */
export function takeRows(x: Tensor, src: Int32Array): Tensor {
  if (x.rank !== 2) throw new Error(`takeRows: x must be [R, D], got ${shapeStr(x.shape)}`);
  const [R] = x.shape;
  // the inverse map: which output row each input row went to (−1: none), for the backward
  const inv = new Int32Array(R).fill(-1);
  src.forEach((r, m) => {
    if (r === -1) return;
    if (!(Number.isInteger(r) && r >= 0 && r < R)) {
      throw new Error(`takeRows: row ${r} (entry ${m}) is outside 0..${R - 1}`);
    }
    if (inv[r] !== -1) {
      throw new Error(`takeRows: row ${r} is taken twice (entries ${inv[r]}, ${m})`);
    }
    inv[r] = m;
  });
  return takeWith(x, src, inv);
}

function takeWith(x: Tensor, src: Int32Array, inv: Int32Array): Tensor {
  const D = x.shape[1], M = src.length;
  const out = empty([M, D]);
  const ids = intTensor(src, [M]);
  // x [R, D], ids [M] i32 → out [M, D]
  gridKernel({
    name: "take_rows",
    n: M * D,
    read: { X: x, I: ids },
    write: { O: out },
    body: `let r = I[i / ${D}u];
  O[i] = select(0.0, X[u32(max(r, 0)) * ${D}u + i % ${D}u], r >= 0);`,
  });
  // the map is injective, so the transpose of "take src" is "take inv"
  return record(out, "take_rows", [x], (g) => [takeWith(g, inv, src)]);
}
