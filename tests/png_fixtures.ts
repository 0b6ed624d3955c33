// PNG files written chunk by chunk, for the modes pngjs cannot encode (palette, 16-bit, 1-4-bit,
// tRNS colour keys): the decoders are tested on files built without them.

import { crc32, deflateSync } from "node:zlib";

export interface PngSpec {
  width: number;
  height: number;
  /** bits per sample: 1, 2, 4, 8 or 16 */
  depth: number;
  /** 0 grey, 2 RGB, 3 palette, 4 grey+alpha, 6 RGBA */
  colorType: number;
  /** row-major samples (palette: indices), channels interleaved */
  samples: ArrayLike<number>;
  /** PLTE entries as [r, g, b] */
  palette?: [number, number, number][];
  /** the tRNS chunk's bytes: palette alphas, or a grey / RGB colour key as 16-bit values */
  trns?: number[];
}

const SAMPLES_PER_PIXEL: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

function chunk(type: string, data: Uint8Array): Uint8Array {
  const out = new Uint8Array(12 + data.length);
  const v = new DataView(out.buffer);
  v.setUint32(0, data.length);
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  out.set(data, 8);
  v.setUint32(8 + data.length, crc32(out.subarray(4, 8 + data.length)));
  return out;
}

/** The bytes of a non-interlaced PNG with every row unfiltered. */
export function pngFile(s: PngSpec): Uint8Array {
  const spp = SAMPLES_PER_PIXEL[s.colorType];
  const rowSamples = s.width * spp;
  const rowBytes = Math.ceil((rowSamples * s.depth) / 8);
  const raw = new Uint8Array((rowBytes + 1) * s.height);
  for (let y = 0; y < s.height; y++) {
    const row = raw.subarray(y * (rowBytes + 1) + 1, (y + 1) * (rowBytes + 1));
    for (let i = 0; i < rowSamples; i++) {
      const v = s.samples[y * rowSamples + i];
      if (s.depth === 16) {
        row[2 * i] = v >> 8;
        row[2 * i + 1] = v & 0xff;
      } else if (s.depth === 8) row[i] = v;
      else {
        // sub-byte samples are packed from the most significant bit
        const bit = i * s.depth;
        row[bit >> 3] |= v << (8 - s.depth - (bit & 7));
      }
    }
  }
  const ihdr = new Uint8Array(13);
  const h = new DataView(ihdr.buffer);
  h.setUint32(0, s.width);
  h.setUint32(4, s.height);
  ihdr[8] = s.depth;
  ihdr[9] = s.colorType;
  const parts = [
    new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk("IHDR", ihdr),
  ];
  if (s.palette) parts.push(chunk("PLTE", Uint8Array.from(s.palette.flat())));
  if (s.trns) {
    const t = s.colorType === 3
      ? Uint8Array.from(s.trns)
      : Uint8Array.from(s.trns.flatMap((v) => [v >> 8, v & 0xff]));
    parts.push(chunk("tRNS", t));
  }
  parts.push(chunk("IDAT", new Uint8Array(deflateSync(raw))), chunk("IEND", new Uint8Array()));
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/**
 * A decompression bomb: a valid 8-bit grey PNG of `width`×`height` zero pixels, whose all-zero
 * rows deflate to a few bytes per thousand pixels (10000×9000 is about 90 KB).
 */
export function bombPng(width: number, height: number): Uint8Array {
  return concat([
    pngHeader(width, height),
    chunk("IDAT", new Uint8Array(deflateSync(new Uint8Array((width + 1) * height), { level: 9 }))),
    chunk("IEND", new Uint8Array()),
  ]);
}

/** The signature and IHDR chunk of an 8-bit grey PNG of `width`×`height`, and nothing else. */
export function pngHeader(width: number, height: number): Uint8Array {
  const ihdr = new Uint8Array(13);
  const h = new DataView(ihdr.buffer);
  h.setUint32(0, width);
  h.setUint32(4, height);
  ihdr[8] = 8;
  ihdr[9] = 0;
  return concat([new Uint8Array([137, 80, 78, 71, 13, 10, 26, 10]), chunk("IHDR", ihdr)]);
}

/** The start of a baseline JPEG: SOI and a one-component frame header of `width`×`height`. */
export function jpegHeader(width: number, height: number): Uint8Array {
  const [hh, hl, wh, wl] = [height >> 8, height & 255, width >> 8, width & 255];
  return new Uint8Array([0xff, 0xd8, 0xff, 0xc0, 0, 11, 8, hh, hl, wh, wl, 1, 1, 0x11, 0]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of parts) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

/** An interlaced (Adam7) 8-bit grey PNG of `width`×`height` whose IDAT inflates to `raw`. */
export function interlacedGreyPng(width: number, height: number, raw: Uint8Array): Uint8Array {
  const header = pngHeader(width, height);
  const ihdr = header.subarray(8 + 8, 8 + 8 + 13);
  ihdr[12] = 1; // interlace method: Adam7
  return concat([
    pngHeader(width, height).subarray(0, 8),
    chunk("IHDR", ihdr),
    chunk("IDAT", new Uint8Array(deflateSync(raw, { level: 9 }))),
    chunk("IEND", new Uint8Array()),
  ]);
}
