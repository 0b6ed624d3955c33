// The one-level Haar transform a `model.wavelet: haar` model draws in (wavelet diffusion, Phung et
// al. 2023, "Wavelet Diffusion Models are fast and scalable image generators"). Each 2×2 block
// [a b; c d] of a channel becomes four numbers at half the side:
//   LL = (a + b + c + d) / 4    the block's mean: the image at half the side, exactly
//   H  = (a − b + c − d) / 2    left minus right
//   V  = (a + b − c − d) / 2    top minus bottom
//   D  = (a − b − c + d) / 2    the diagonal
// The low band is scaled as a mean, not orthonormally (which would be 2× the mean), so that it is
// the half-size image a stage-2 model was trained on, at its scale and under the same unit noise:
// a 64×64 model starts as the 32×32 one (train/model_init.ts). The detail bands keep the
// orthonormal scale, so their noise per pixel is what a pixel model's is; the low band gets four
// times the orthonormal noise, the signal-to-noise shift Hoogeboom et al. 2023 ("simple
// diffusion") give the whole image when its side doubles.
// Layout: [n, C, S, S] ↔ [n, 4C, S/2, S/2], the bands in the order LL, H, V, D, each C channels.

import type { ModelSection } from "../io/config_schema.ts";

/**
 * Visits every 2×2 block of [n, C, S, S]: `p` the offsets of its pixels a, b, c, d, `q` those of its
 * four band values LL, H, V, D in [n, 4C, S/2, S/2] (reused between calls).
 */
function eachBlock(n: number, C: number, S: number, visit: (p: number[], q: number[]) => void) {
  const h = S / 2, plane = h * h, p = [0, 0, 0, 0], q = [0, 0, 0, 0];
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < h; j++) {
          const o = (b * C + c) * S * S + 2 * i * S + 2 * j;
          [p[0], p[1], p[2], p[3]] = [o, o + 1, o + S, o + S + 1];
          for (let k = 0; k < 4; k++) q[k] = (b * 4 * C + k * C + c) * plane + i * h + j;
          visit(p, q);
        }
      }
    }
  }
}

/** [n, C, S, S] pixels → [n, 4C, S/2, S/2] bands. */
export function haarForward(x: Float32Array, n: number, C: number, S: number): Float32Array {
  const out = new Float32Array(x.length);
  eachBlock(n, C, S, (p, q) => {
    const a = x[p[0]], r = x[p[1]], c = x[p[2]], d = x[p[3]];
    out[q[0]] = (a + r + c + d) / 4;
    out[q[1]] = (a - r + c - d) / 2;
    out[q[2]] = (a + r - c - d) / 2;
    out[q[3]] = (a - r - c + d) / 2;
  });
  return out;
}

/** [n, 4C, S/2, S/2] bands → [n, C, S, S] pixels: haarForward's inverse. */
export function haarInverse(y: Float32Array, n: number, C: number, S: number): Float32Array {
  const out = new Float32Array(y.length);
  eachBlock(n, C, S, (p, q) => {
    const m = y[q[0]], H = y[q[1]] / 2, V = y[q[2]] / 2, D = y[q[3]] / 2;
    out[p[0]] = m + H + V + D;
    out[p[1]] = m - H + V - D;
    out[p[2]] = m + H - V - D;
    out[p[3]] = m - H - V + D;
  });
  return out;
}

/**
 * An inpainting mask [n, S, S] (≥ ½ repaints) → [n, S/2, S/2]: a block is repainted when any of its
 * pixels is, so every kept block holds known pixels only (generate pastes the known pixels back).
 */
export function haarMask(mask: Float32Array, n: number, S: number): Float32Array {
  const h = S / 2, out = new Float32Array(n * h * h);
  for (let b = 0; b < n; b++) {
    for (let i = 0; i < h; i++) {
      for (let j = 0; j < h; j++) {
        const o = b * S * S + 2 * i * S + 2 * j;
        const any = Math.max(mask[o], mask[o + 1], mask[o + S], mask[o + S + 1]) >= 0.5;
        out[(b * h + i) * h + j] = any ? 1 : 0;
      }
    }
  }
  return out;
}

/** Images [n, C, S, S] as the model `c` draws them: themselves, or their Haar bands. */
export function toModelSpace(c: ModelSection, images: Float32Array, n: number): Float32Array {
  return c.wavelet === "haar" ? haarForward(images, n, c.in_channels, c.image_size) : images;
}

/** What the model `c` drew, [n, …] in its own space, as images [n, C, S, S]. */
export function toPixels(c: ModelSection, x: Float32Array, n: number): Float32Array {
  return c.wavelet === "haar" ? haarInverse(x, n, c.in_channels, c.image_size) : x;
}
