// An image in one hue: each pixel's luma (ITU-R BT.601) read along a ramp from a dark to a light
// shade of a colour, its alpha kept. The LoRA demo's data (tasks/data_tinted.ts): emoji the model
// knows, in a colour they do not come in.

import { LUMA_601 } from "./image_file.ts";

/** The ramps: the colour at luma 0, ½ and 1 (RGB bytes), linear between. */
export const TINTS = {
  blue: [[12, 28, 96], [32, 104, 232], [206, 226, 255]],
  green: [[10, 60, 24], [40, 170, 70], [214, 245, 214]],
  red: [[80, 8, 12], [220, 40, 40], [255, 214, 210]],
  purple: [[50, 14, 84], [140, 60, 210], [234, 214, 255]],
} as const;

export type Tint = keyof typeof TINTS;

/** RGBA pixels (4 bytes each) in the tint's hue: a new array. */
export function tintRgba(rgba: Uint8Array, tint: Tint): Uint8Array {
  const [dark, mid, light] = TINTS[tint];
  const out = new Uint8Array(rgba.length);
  for (let i = 0; i < rgba.length; i += 4) {
    const y = (LUMA_601[0] * rgba[i] + LUMA_601[1] * rgba[i + 1] + LUMA_601[2] * rgba[i + 2]) /
      255;
    const [a, b, f] = y < 0.5 ? [dark, mid, 2 * y] : [mid, light, 2 * y - 1];
    for (let c = 0; c < 3; c++) out[i + c] = Math.round(a[c] + (b[c] - a[c]) * f);
    out[i + 3] = rgba[i + 3];
  }
  return out;
}
