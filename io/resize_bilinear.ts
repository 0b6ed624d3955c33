// Bilinear resizing as PyTorch's interpolate does it: MNIST's 28×28 digits to the model's 32×32
// (docs/spec.md §1), and generated images to the evaluation classifier's size. Image folders are
// shrunk with an area filter instead (io/resize_area.ts), which never aliases.

/**
 * Bilinear resize of [n, C, h, w] to [n, C, outH, outW] with the semantics of
 * torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False):
 * source coordinate (dst + 0.5)·(in/out) − 0.5, clamped below at 0; the upper neighbour is
 * clamped to the last pixel.
 */
export function resizeBilinear(
  images: Float32Array,
  n: number,
  C: number,
  h: number,
  w: number,
  outH: number,
  outW: number,
): Float32Array {
  if (images.length !== n * C * h * w) {
    throw new Error(`resizeBilinear: expected ${n * C * h * w} values, got ${images.length}`);
  }
  const axis = (inSize: number, outSize: number) => {
    const i0 = new Int32Array(outSize);
    const i1 = new Int32Array(outSize);
    const l1 = new Float64Array(outSize);
    const scale = inSize / outSize;
    for (let d = 0; d < outSize; d++) {
      let src = (d + 0.5) * scale - 0.5;
      if (src < 0) src = 0;
      const f = Math.min(Math.floor(src), inSize - 1);
      i0[d] = f;
      i1[d] = f < inSize - 1 ? f + 1 : f;
      l1[d] = src - f;
    }
    return { i0, i1, l1 };
  };
  const ay = axis(h, outH);
  const ax = axis(w, outW);
  const out = new Float32Array(n * C * outH * outW);
  for (let p = 0; p < n * C; p++) {
    const src = p * h * w;
    const dst = p * outH * outW;
    for (let y = 0; y < outH; y++) {
      const r0 = src + ay.i0[y] * w, r1 = src + ay.i1[y] * w;
      const wy1 = ay.l1[y], wy0 = 1 - wy1;
      for (let x = 0; x < outW; x++) {
        const c0 = ax.i0[x], c1 = ax.i1[x];
        const wx1 = ax.l1[x], wx0 = 1 - wx1;
        out[dst + y * outW + x] = wy0 * (wx0 * images[r0 + c0] + wx1 * images[r0 + c1]) +
          wy1 * (wx0 * images[r1 + c0] + wx1 * images[r1 + c1]);
      }
    }
  }
  return out;
}
