// PNG files through the npm package pngjs (any bit depth, palette, interlacing, CRC checks), and
// the sample grid of docs/spec.md §5: images in [-1, 1] tiled with black padding around and between.

import { PNG } from "pngjs";
import { Buffer } from "node:buffer";
import { dirname } from "node:path";
import { toByte } from "./pixels.ts";
import { isPng } from "./image_format.ts";
import { checkPixelCount, MAX_IMAGE_PIXELS, pngInflatedBytes, pngSize } from "./image_header.ts";
import { inflateSync } from "node:zlib";

export { isPng, MAX_IMAGE_PIXELS, toByte };

export type Channels = 1 | 2 | 3 | 4;

export interface RawImage {
  width: number;
  height: number;
  /** 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
  channels: Channels;
  /** row-major, channels interleaved: height·width·channels bytes */
  pixels: Uint8Array;
}

/** What `PNG.sync.read` returns (the package ships no types): the header and RGBA pixels. */
export interface PngjsImage {
  width: number;
  height: number;
  /** bits per sample in the file: 1, 2, 4, 8 or 16 */
  depth: number;
  /** 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA */
  colorType: number;
  /** true when the file has an alpha channel or a tRNS transparency chunk */
  alpha: boolean;
  /** RGBA, 4 samples a pixel: bytes, or with `skipRescale` the file's own range (16-bit in a
   * Uint16Array, 1-4-bit as 0 … 2^depth − 1; palette entries are always bytes) */
  data: Uint8Array | Uint16Array;
}

interface PngjsSync {
  read(bytes: Buffer, options?: { skipRescale?: boolean }): PngjsImage;
  write(
    image: { width: number; height: number; data: Buffer },
    options: { colorType: number; inputColorType: number; bitDepth: 8 },
  ): Buffer;
}

const pngjs: PngjsSync = PNG.sync;

/** pngjs works on Node buffers: a view of the same bytes, not a copy. */
function asBuffer(bytes: Uint8Array): Buffer {
  return Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/**
 * Any PNG as pngjs decodes it: RGBA, rescaled to bytes unless `skipRescale` keeps the file's own
 * sample range. Errors are pngjs's own messages, prefixed "png: ".
 */
export function readPngRgba(bytes: Uint8Array, skipRescale = false): PngjsImage {
  // checked here because pngjs reports only its last error ("unrecognised content at end of
  // stream" for a file that is not a PNG at all)
  if (!isPng(bytes)) throw new Error("png: not a PNG file (no PNG signature)");
  checkPixelCount("png", pngSize(bytes));
  // pngjs bounds what it inflates by the image's size only for a plain image: an interlaced one's
  // few kilobytes could inflate to gigabytes first, so its data is bounded here
  if (bytes[28] === 1) checkInflatedSize(bytes);
  try {
    return pngjs.read(asBuffer(bytes), { skipRescale });
  } catch (e) {
    throw new Error(`png: ${(e as Error).message}`);
  }
}

/** Inflates an interlaced PNG's IDAT chunks at most to the size its header implies. */
function checkInflatedSize(bytes: Uint8Array): void {
  const most = pngInflatedBytes(bytes);
  if (most === null) return;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const idat: Uint8Array[] = [];
  for (let i = 8; i + 8 <= bytes.length;) {
    const length = v.getUint32(i);
    const type = String.fromCharCode(...bytes.subarray(i + 4, i + 8));
    if (type === "IDAT") idat.push(bytes.subarray(i + 8, Math.min(bytes.length, i + 8 + length)));
    if (type === "IEND") break;
    i += 12 + length;
  }
  try {
    inflateSync(Buffer.concat(idat), { maxOutputLength: most });
  } catch (e) {
    if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") {
      throw new Error(
        `png: its image data inflates past the ${most.toLocaleString("en")} bytes its header ` +
          `allows (a decompression bomb?): use another image`,
      );
    }
    // other faults (a broken stream) are pngjs's to report
  }
}

// PNG colour types by channel count
const COLOR_TYPE: Record<Channels, number> = { 1: 0, 2: 4, 3: 2, 4: 6 };
// where each channel sits in pngjs's RGBA pixels: grey is in R (= G = B), alpha is last
const PICK: Record<Channels, number[]> = { 1: [0], 2: [0, 3], 3: [0, 1, 2], 4: [0, 1, 2, 3] };

/**
 * Encodes 8-bit pixels as PNG. `pixels` is row-major with interleaved channels
 * (height·width·channels bytes), stored with the colour type of that many channels.
 */
export function encodePng(
  width: number,
  height: number,
  channels: Channels,
  pixels: Uint8Array,
): Uint8Array {
  if (!Number.isInteger(width) || !Number.isInteger(height) || width < 1 || height < 1) {
    throw new Error(`png: bad size ${width}×${height}`);
  }
  if (!(channels in COLOR_TYPE)) {
    throw new Error(`png: channels must be 1, 2, 3 or 4, got ${channels}`);
  }
  if (pixels.length !== width * height * channels) {
    throw new Error(
      `png: expected ${
        width * height * channels
      } bytes for ${width}×${height}×${channels}, got ${pixels.length}`,
    );
  }
  const type = COLOR_TYPE[channels];
  const bytes = pngjs.write({ width, height, data: asBuffer(pixels) }, {
    colorType: type,
    inputColorType: type,
    bitDepth: 8,
  });
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Encodes and writes a PNG file (creating its folder). */
export function writePng(
  path: string,
  width: number,
  height: number,
  channels: Channels,
  pixels: Uint8Array,
): void {
  const bytes = encodePng(width, height, channels, pixels);
  Deno.mkdirSync(dirname(path), { recursive: true });
  Deno.writeFileSync(path, bytes);
}

/**
 * Decodes any PNG to 8-bit pixels with the channels its colour type implies: grey 1, grey+alpha
 * 2, RGB 3, RGBA 4; a palette is expanded to RGB, or RGBA when it has transparency, and a tRNS
 * colour key adds an alpha channel. 16-bit samples are rounded to 8 bits.
 */
export function decodePng(bytes: Uint8Array): RawImage {
  const img = readPngRgba(bytes);
  const colour = img.colorType === 2 || img.colorType === 3 || img.colorType === 6;
  const channels = ((colour ? 3 : 1) + (img.alpha ? 1 : 0)) as Channels;
  const n = img.width * img.height;
  const pixels = new Uint8Array(n * channels);
  const rgba = img.data;
  const pick = PICK[channels];
  for (let i = 0; i < n; i++) {
    for (let c = 0; c < channels; c++) pixels[i * channels + c] = rgba[i * 4 + pick[c]];
  }
  return { width: img.width, height: img.height, channels, pixels };
}

// ---------------------------------------------------------------------------------------------
// sample grids

/**
 * Tiles n images ([n, C, H, W] in [-1, 1], C = 1 or 3) into one picture, `cols` per row
 * (at most n), with `pad` black pixels around and between the tiles:
 * width = cols·W + (cols + 1)·pad, height = rows·H + (rows + 1)·pad (8×8 of 32×32, pad 2 → 274×274).
 */
export function imageGrid(
  images: Float32Array,
  n: number,
  C: number,
  H: number,
  W: number,
  cols = 8,
  pad = 2,
): RawImage {
  if (C !== 1 && C !== 3) throw new Error(`imageGrid: channels must be 1 or 3, got ${C}`);
  if (images.length !== n * C * H * W) {
    throw new Error(
      `imageGrid: expected ${n}×${C}×${H}×${W} = ${n * C * H * W} values, got ${images.length}`,
    );
  }
  if (n < 1) throw new Error("imageGrid: no images");
  const nc = Math.max(1, Math.min(cols, n));
  const rows = Math.ceil(n / nc);
  const width = nc * W + (nc + 1) * pad;
  const height = rows * H + (rows + 1) * pad;
  const pixels = new Uint8Array(width * height * C); // zeros = black padding
  for (let k = 0; k < n; k++) {
    const x0 = pad + (k % nc) * (W + pad);
    const y0 = pad + Math.floor(k / nc) * (H + pad);
    for (let c = 0; c < C; c++) {
      const base = (k * C + c) * H * W;
      for (let y = 0; y < H; y++) {
        for (let x = 0; x < W; x++) {
          pixels[((y0 + y) * width + x0 + x) * C + c] = toByte(images[base + y * W + x]);
        }
      }
    }
  }
  return { width, height, channels: C as Channels, pixels };
}

/** imageGrid + writePng. */
export function writeImageGrid(
  path: string,
  images: Float32Array,
  n: number,
  C: number,
  H: number,
  W: number,
  cols = 8,
  pad = 2,
): RawImage {
  const g = imageGrid(images, n, C, H, W, cols, pad);
  writePng(path, g.width, g.height, g.channels, g.pixels);
  return g;
}
