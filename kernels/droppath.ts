// Stochastic depth (drop-path): each sample of a batch is multiplied by its own factor, 0 for a
// dropped sample and 1/(1 − p) for a kept one. The caller draws the factors; `keep` is a constant
// for autograd (no gradient flows to it).

import { record } from "./autograd.ts";
import { dispatch, kernel } from "./runtime.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";
import { ENTRY, flatIndex, grid1d } from "./wgsl.ts";

// x [B, inner], keep [B] → out [B, inner] = x · keep[b]
function perSampleScale(name: string, x: Tensor, keep: Tensor): Tensor {
  const out = empty(x.shape);
  const n = x.size;
  if (n === 0) return out;
  const inner = n / x.shape[0];
  const [gx, gy] = grid1d(n);
  const code = `
@group(0) @binding(0) var<storage, read> X: array<f32>;
@group(0) @binding(1) var<storage, read> K: array<f32>;
@group(0) @binding(2) var<storage, read_write> O: array<f32>;
${ENTRY()} {
  ${flatIndex(gx)}
  if (i >= ${n}u) { return; }
  O[i] = X[i] * K[i / ${inner}u];
}`;
  dispatch(kernel(name, code), [x, keep, out], gx, gy);
  return out;
}

/** x [B, ...] scaled per sample by keep [B] (0 or 1/(1 − p), made by the caller). Gradient to x. */
export function dropPath(x: Tensor, keep: Tensor): Tensor {
  if (x.rank < 1 || keep.size !== x.shape[0] || keep.dtype !== "f32") {
    throw new Error(
      `dropPath: keep ${shapeStr(keep.shape)} (${keep.dtype}) must be f32 [B] for x ${
        shapeStr(x.shape)
      }`,
    );
  }
  const out = perSampleScale("drop_path", x, keep);
  // g [B, inner], keep [B] → dx = g · keep[b]
  return record(
    out,
    "drop_path",
    [x],
    (g) => [perSampleScale("drop_path_backward", g, keep)],
    [keep],
  );
}
