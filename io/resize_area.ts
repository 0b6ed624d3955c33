// Area-averaging resize (a box filter, PIL's Image.BOX): every output pixel is the mean of the
// source area it covers, with partly covered source pixels weighted by the covered fraction, so
// it is exact for integer and fractional ratios alike and never aliases when shrinking. And the
// square fit of an image folder: scale the short side to the target, centre-crop the long side.

/** Source pixels and weights (summing to 1) of each output pixel along one axis. */
interface AxisWeights {
  /** output j reads from `start[j]` … `start[j] + weights[j].length − 1` */
  start: Int32Array;
  weights: Float64Array[];
}

/**
 * Output j of `outSize` covers the source interval [from + j·step, from + (j + 1)·step) with
 * step = length / outSize, in continuous coordinates where source pixel i spans [i, i + 1).
 */
function axisWeights(from: number, length: number, outSize: number): AxisWeights {
  const step = length / outSize;
  const start = new Int32Array(outSize);
  const weights: Float64Array[] = [];
  for (let j = 0; j < outSize; j++) {
    // j·length / outSize rather than j·step: exact whenever the boundary is a whole pixel, so no
    // rounding error reaches past it into a neighbour (or past the image's edge)
    const a = from + (j * length) / outSize, b = from + ((j + 1) * length) / outSize;
    const i0 = Math.floor(a);
    const i1 = Math.ceil(b) - 1;
    const w = new Float64Array(i1 - i0 + 1);
    for (let i = i0; i <= i1; i++) w[i - i0] = (Math.min(b, i + 1) - Math.max(a, i)) / step;
    start[j] = i0;
    weights.push(w);
  }
  return { start, weights };
}

/**
 * Area-resamples the window [y0, y0 + hh) × [x0, x0 + ww) (continuous coordinates, inside the
 * image) of each h × w plane of `images` to outH × outW; `planes` = images × channels.
 */
function resampleWindow(
  images: Float32Array,
  planes: number,
  h: number,
  w: number,
  window: { y0: number; x0: number; hh: number; ww: number },
  outH: number,
  outW: number,
): Float32Array {
  if (images.length !== planes * h * w) {
    throw new Error(`resize: expected ${planes * h * w} values, got ${images.length}`);
  }
  if (!(outH >= 1 && outW >= 1 && Number.isInteger(outH) && Number.isInteger(outW))) {
    throw new Error(`resize: output size must be positive integers, got ${outH}×${outW}`);
  }
  const ax = axisWeights(window.x0, window.ww, outW);
  const ay = axisWeights(window.y0, window.hh, outH);
  const out = new Float32Array(planes * outH * outW);
  // only the window's rows are resized along x: a 1 × 10⁸ strip cropped to its square reads one
  // row, where all of them would need h·outW·8 bytes (tens of GB)
  const yLo = ay.start[0], yHi = ay.start[outH - 1] + ay.weights[outH - 1].length;
  const rows = new Float64Array((yHi - yLo) * outW); // the window's rows resized along x only
  for (let p = 0; p < planes; p++) {
    const src = p * h * w;
    for (let y = yLo; y < yHi; y++) {
      for (let x = 0; x < outW; x++) {
        const wx = ax.weights[x], s = src + y * w + ax.start[x];
        let acc = 0;
        for (let k = 0; k < wx.length; k++) acc += wx[k] * images[s + k];
        rows[(y - yLo) * outW + x] = acc;
      }
    }
    const dst = p * outH * outW;
    for (let y = 0; y < outH; y++) {
      const wy = ay.weights[y], y0 = ay.start[y] - yLo;
      for (let x = 0; x < outW; x++) {
        let acc = 0;
        for (let k = 0; k < wy.length; k++) acc += wy[k] * rows[(y0 + k) * outW + x];
        out[dst + y * outW + x] = acc;
      }
    }
  }
  return out;
}

/** Area-averaging resize of [n, C, h, w] to [n, C, outH, outW]. */
export function resizeArea(
  images: Float32Array,
  n: number,
  C: number,
  h: number,
  w: number,
  outH: number,
  outW: number,
): Float32Array {
  return resampleWindow(images, n * C, h, w, { y0: 0, x0: 0, hh: h, ww: w }, outH, outW);
}

/**
 * [n, C, h, w] to [n, C, size, size]: the short side is scaled to `size` and the long side
 * centre-cropped to it. Both happen in one area resample of the centred short × short square,
 * taken in continuous coordinates: an odd difference of sides crops half a pixel at each end
 * rather than rounding the crop to one side.
 */
export function fitSquare(
  images: Float32Array,
  n: number,
  C: number,
  h: number,
  w: number,
  size: number,
): Float32Array {
  const side = Math.min(h, w);
  const window = { y0: (h - side) / 2, x0: (w - side) / 2, hh: side, ww: side };
  return resampleWindow(images, n * C, h, w, window, size, size);
}
