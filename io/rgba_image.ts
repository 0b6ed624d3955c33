// RGBA pixels to the model's planes, as image folders are read: alpha composited on white, then 1
// or 3 channels. No file access and no packages, so the web page converts what a canvas decoded
// exactly as the command line converts a file (io/image_file.ts).

import { fitSquare } from "./resize_area.ts";

/** ITU-R BT.601 luma weights: grey = 0.299 R + 0.587 G + 0.114 B. */
export const LUMA_601 = [0.299, 0.587, 0.114] as const;

/**
 * RGBA samples (4 a pixel, each 0 … max) to RGB planes, composited on white: a pixel of colour
 * c and opacity a becomes a·c + (1 − a), as it looks on a white page.
 */
export function compositeOnWhite(
  rgba: ArrayLike<number>,
  width: number,
  height: number,
  max: number,
): Float32Array {
  const n = width * height;
  const rgb = new Float32Array(3 * n);
  for (let i = 0; i < n; i++) {
    const a = rgba[4 * i + 3] / max;
    for (let c = 0; c < 3; c++) rgb[c * n + i] = (a * rgba[4 * i + c]) / max + (1 - a);
  }
  return rgb;
}

/** RGB planes [3, n] to `channels` planes: 3 unchanged, 1 by BT.601 luma. */
export function toChannels(rgb: Float32Array, channels: 1 | 3): Float32Array {
  if (channels === 3) return rgb;
  const n = rgb.length / 3;
  const grey = new Float32Array(n);
  const [r, g, b] = LUMA_601;
  for (let i = 0; i < n; i++) grey[i] = r * rgb[i] + g * rgb[n + i] + b * rgb[2 * n + i];
  return grey;
}

/** 8-bit RGBA pixels (a canvas's ImageData) to [channels, size, size] in [0, 1]. */
export function rgbaToSquare(
  rgba: ArrayLike<number>,
  width: number,
  height: number,
  size: number,
  channels: 1 | 3,
): Float32Array {
  const rgb = compositeOnWhite(rgba, width, height, 255);
  return fitSquare(toChannels(rgb, channels), 1, channels, height, width, size);
}

/**
 * RGBA pixels (4 a pixel) of a stored image turned upright by its EXIF orientation `o` (1–8, TIFF
 * 6.0): 2–4 mirror or turn it half round, 5–8 swap its width and height (6: a quarter turn
 * clockwise, 8: anticlockwise; 5 and 7 with a mirror).
 */
export function orientRgba<T extends Uint8Array | Uint16Array>(
  data: T,
  width: number,
  height: number,
  o: number,
): { data: T; width: number; height: number } {
  if (o <= 1 || o > 8) return { data, width, height };
  const swap = o >= 5;
  const W = swap ? height : width, H = swap ? width : height;
  const out = new (data.constructor as { new (n: number): T })(W * H * 4);
  // the stored pixel shown at (x, y): sx = a·x + b·y + c, sy = d·x + e·y + f
  const w1 = width - 1, h1 = height - 1;
  const [a, b, c, d, e, f] = {
    2: [-1, 0, w1, 0, 1, 0],
    3: [-1, 0, w1, 0, -1, h1],
    4: [1, 0, 0, 0, -1, h1],
    5: [0, 1, 0, 1, 0, 0],
    6: [0, 1, 0, -1, 0, h1],
    7: [0, -1, w1, -1, 0, h1],
    8: [0, -1, w1, 1, 0, 0],
  }[o as 2 | 3 | 4 | 5 | 6 | 7 | 8];
  for (let y = 0; y < H; y++) {
    for (let x = 0; x < W; x++) {
      const sx = a * x + b * y + c, sy = d * x + e * y + f;
      const from = 4 * (sy * width + sx), to = 4 * (y * W + x);
      for (let k = 0; k < 4; k++) out[to + k] = data[from + k];
    }
  }
  return { data: out, width: W, height: H };
}
