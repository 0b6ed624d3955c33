// Stochastic depth (drop-path): each sample of a batch is multiplied by its own factor, 0 for a
// dropped sample and 1/(1 − p) for a kept one. The caller draws the factors; `keep` is a constant
// for autograd (no gradient flows to it).

import { record } from "./autograd.ts";
import { gridKernel } from "./grid_kernel.ts";
import { empty, shapeStr, type Tensor } from "./tensor.ts";

// x [B, inner], keep [B] → out [B, inner] = x · keep[b]
function perSampleScale(name: string, x: Tensor, keep: Tensor): Tensor {
  const out = empty(x.shape);
  const inner = x.size / Math.max(x.shape[0], 1);
  gridKernel({
    name,
    n: x.size,
    read: { X: x, K: keep },
    write: { O: out },
    body: `O[i] = X[i] * K[i / ${inner}u];`,
  });
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
