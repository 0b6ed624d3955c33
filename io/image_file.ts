// One image file to model input: PNG (through pngjs: grey, grey+alpha, RGB, RGBA, palette, 1- to
// 16-bit) or JPEG (through jpeg-js), told apart by their first bytes; alpha composited on white;
// converted to 1 or 3 channels; fitted to a square (io/resize_area.ts). Values in [0, 1].

import jpeg from "jpeg-js";
import { isPng, MAX_IMAGE_PIXELS, readPngRgba } from "./png.ts";
import { fitSquare } from "./resize_area.ts";

/** A decoded image: [3, height, width] RGB planes in [0, 1]. */
export interface RgbImage {
  width: number;
  height: number;
  rgb: Float32Array;
}

/** ITU-R BT.601 luma weights: grey = 0.299 R + 0.587 G + 0.114 B. */
export const LUMA_601 = [0.299, 0.587, 0.114] as const;

// jpeg-js refuses larger images instead of exhausting memory: the pixels PNG allows, in millions
const JPEG_LIMITS = { maxResolutionInMP: MAX_IMAGE_PIXELS / 1e6, maxMemoryUsageInMB: 2048 };

function isJpeg(bytes: Uint8Array): boolean {
  return bytes.length >= 3 && bytes[0] === 0xff && bytes[1] === 0xd8 && bytes[2] === 0xff;
}

/**
 * RGBA samples (4 a pixel, each 0 … max) to RGB planes, composited on white: a pixel of colour
 * c and opacity a becomes a·c + (1 − a), as it looks on a white page.
 */
function compositeOnWhite(
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

/** Decodes PNG or JPEG bytes; errors say what is wrong with the file (the caller names it). */
export function decodeImage(bytes: Uint8Array): RgbImage {
  if (isPng(bytes)) {
    // the file's own sample range, so 16-bit images keep their precision
    const img = readPngRgba(bytes, true);
    const max = img.colorType === 3 ? 255 : 2 ** img.depth - 1;
    const { width, height } = img;
    return { width, height, rgb: compositeOnWhite(img.data, width, height, max) };
  }
  if (isJpeg(bytes)) {
    let img: { width: number; height: number; data: Uint8Array };
    try {
      img = jpeg.decode(bytes, { useTArray: true, formatAsRGBA: true, ...JPEG_LIMITS });
    } catch (e) {
      throw new Error(`jpeg: ${String((e as Error).message ?? e)}`);
    }
    const { width, height } = img;
    if (!(width > 0 && height > 0) || img.data.length < width * height * 4) {
      throw new Error("jpeg: no image data");
    }
    return { width, height, rgb: compositeOnWhite(img.data, width, height, 255) };
  }
  throw new Error("not a PNG or JPEG file");
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

/** Decodes an image file's bytes to [channels, size, size] in [0, 1]. */
export function imageToSquare(bytes: Uint8Array, size: number, channels: 1 | 3): Float32Array {
  const img = decodeImage(bytes);
  return fitSquare(toChannels(img.rgb, channels), 1, channels, img.height, img.width, size);
}
