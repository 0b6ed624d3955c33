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
