// Minimal PNG encoder/decoder (8-bit grey, grey+alpha, RGB, RGBA; non-interlaced) and the
// sample grid of PIXART.md §5: images in [-1, 1] tiled with black padding around and between.

import { deflateSync, inflateSync } from "node:zlib";
import { dirname } from "node:path";
import { toByte } from "./pixels.ts";

export { toByte };

export type Channels = 1 | 2 | 3 | 4;

export interface RawImage {
  width: number;
  height: number;
  /** 1 grey, 2 grey+alpha, 3 RGB, 4 RGBA */
  channels: Channels;
  /** row-major, channels interleaved: height·width·channels bytes */
  pixels: Uint8Array;
}

const SIGNATURE = new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]);
const COLOR_TYPE: Record<Channels, number> = { 1: 0, 2: 4, 3: 2, 4: 6 };
const CHANNELS_OF: Record<number, Channels> = { 0: 1, 4: 2, 2: 3, 6: 4 };

// ---------------------------------------------------------------------------------------------
// CRC-32 (ISO 3309 / PNG), table-driven

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c >>> 0;
  }
  return t;
})();

/** CRC-32 of `bytes` (continuing from `crc` when given). */
export function crc32(bytes: Uint8Array, crc = 0): number {
  let c = (crc ^ 0xffffffff) >>> 0;
  for (let i = 0; i < bytes.length; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

// ---------------------------------------------------------------------------------------------
// encoding

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a), pb = Math.abs(p - b), pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/**
 * Encodes 8-bit pixels as PNG. `pixels` is row-major with interleaved channels
 * (height·width·channels bytes). Each row gets the filter with the smallest sum of absolute
 * residuals (the usual heuristic), then the whole image is deflated.
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
  const stride = width * channels;
  if (pixels.length !== stride * height) {
    throw new Error(
      `png: expected ${
        stride * height
      } bytes for ${width}×${height}×${channels}, got ${pixels.length}`,
    );
  }
  const bpp = channels;
  const filtered = new Uint8Array((stride + 1) * height);
  const cand = new Uint8Array(stride);
  const zero = new Uint8Array(stride);
  for (let y = 0; y < height; y++) {
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    const prev = y > 0 ? pixels.subarray((y - 1) * stride, y * stride) : zero;
    let bestType = 0;
    let bestSum = Infinity;
    const dst = filtered.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    for (let type = 0; type < 5; type++) {
      let sum = 0;
      for (let i = 0; i < stride; i++) {
        const a = i >= bpp ? row[i - bpp] : 0;
        const b = prev[i];
        const c = i >= bpp ? prev[i - bpp] : 0;
        const pred = type === 0
          ? 0
          : type === 1
          ? a
          : type === 2
          ? b
          : type === 3
          ? (a + b) >> 1
          : paeth(a, b, c);
        const r = (row[i] - pred) & 0xff;
        cand[i] = r;
        sum += r < 128 ? r : 256 - r;
      }
      if (sum < bestSum) {
        bestSum = sum;
        bestType = type;
        dst.set(cand);
      }
    }
    filtered[y * (stride + 1)] = bestType;
  }
  const ihdr = new Uint8Array(13);
  const hv = new DataView(ihdr.buffer);
  hv.setUint32(0, width);
  hv.setUint32(4, height);
  ihdr[8] = 8; // bit depth
  ihdr[9] = COLOR_TYPE[channels];
  ihdr[10] = 0; // deflate
  ihdr[11] = 0; // adaptive filtering
  ihdr[12] = 0; // no interlace
  const idat = new Uint8Array(deflateSync(filtered, { level: 9 }));
  const parts = [
    SIGNATURE,
    chunk("IHDR", ihdr),
    chunk("IDAT", idat),
    chunk("IEND", new Uint8Array()),
  ];
  const out = new Uint8Array(parts.reduce((s, p) => s + p.length, 0));
  let off = 0;
  for (const p of parts) {
    out.set(p, off);
    off += p.length;
  }
  return out;
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

// ---------------------------------------------------------------------------------------------
// decoding

/** Decodes an 8-bit, non-interlaced grey / grey+alpha / RGB / RGBA PNG. */
export function decodePng(bytes: Uint8Array): RawImage {
  const bad = (m: string): never => {
    throw new Error(`png: ${m}`);
  };
  if (bytes.length < 8 || !SIGNATURE.every((b, i) => bytes[i] === b)) bad("not a PNG file");
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  let off = 8;
  let width = 0, height = 0, channels: Channels = 1;
  let seenHeader = false;
  const idat: Uint8Array[] = [];
  let ended = false;
  while (off + 12 <= bytes.length) {
    const len = v.getUint32(off);
    const type = String.fromCharCode(...bytes.subarray(off + 4, off + 8));
    if (off + 12 + len > bytes.length) bad(`chunk ${type} runs past the end of the file`);
    const data = bytes.subarray(off + 8, off + 8 + len);
    const crc = v.getUint32(off + 8 + len);
    if (crc32(bytes.subarray(off + 4, off + 8 + len)) !== crc) bad(`CRC mismatch in chunk ${type}`);
    off += 12 + len;
    if (type === "IHDR") {
      const h = new DataView(data.buffer, data.byteOffset, data.byteLength);
      width = h.getUint32(0);
      height = h.getUint32(4);
      const depth = data[8], colorType = data[9], interlace = data[12];
      if (depth !== 8) bad(`bit depth ${depth} is not supported (only 8)`);
      if (!(colorType in CHANNELS_OF)) bad(`color type ${colorType} is not supported`);
      if (interlace !== 0) bad("interlaced images are not supported");
      channels = CHANNELS_OF[colorType];
      seenHeader = true;
    } else if (type === "IDAT") {
      idat.push(data);
    } else if (type === "IEND") {
      ended = true;
      break;
    }
  }
  if (!seenHeader) bad("missing IHDR");
  if (!ended) bad("missing IEND (truncated file?)");
  const total = idat.reduce((s, d) => s + d.length, 0);
  const z = new Uint8Array(total);
  let zo = 0;
  for (const d of idat) {
    z.set(d, zo);
    zo += d.length;
  }
  const raw = new Uint8Array(inflateSync(z));
  const stride = width * channels;
  if (raw.length < (stride + 1) * height) bad("image data is too short");
  const pixels = new Uint8Array(stride * height);
  const bpp = channels;
  for (let y = 0; y < height; y++) {
    const type = raw[y * (stride + 1)];
    const src = raw.subarray(y * (stride + 1) + 1, (y + 1) * (stride + 1));
    const row = pixels.subarray(y * stride, (y + 1) * stride);
    for (let i = 0; i < stride; i++) {
      const a = i >= bpp ? row[i - bpp] : 0;
      const b = y > 0 ? pixels[(y - 1) * stride + i] : 0;
      const c = i >= bpp && y > 0 ? pixels[(y - 1) * stride + i - bpp] : 0;
      let pred = 0;
      switch (type) {
        case 0:
          break;
        case 1:
          pred = a;
          break;
        case 2:
          pred = b;
          break;
        case 3:
          pred = (a + b) >> 1;
          break;
        case 4:
          pred = paeth(a, b, c);
          break;
        default:
          bad(`bad filter type ${type} in row ${y}`);
      }
      row[i] = (src[i] + pred) & 0xff;
    }
  }
  return { width, height, channels, pixels };
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
