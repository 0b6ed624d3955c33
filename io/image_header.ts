// How many pixels an image file declares in its header (PNG or JPEG, told apart by
// io/image_format.ts), so that a file is bounded before any decoder allocates for it. No packages
// and no file access: the command line's decoders (io/png.ts, io/image_file.ts) and the web
// page's (the browser's own) check the same header with the same limit.

/**
 * The most pixels an image file may have: Pillow's `Image.MAX_IMAGE_PIXELS` (a quarter gigabyte
 * of 24-bit pixels). A PNG of a few hundred bytes can declare 20000×20000 pixels of zeros (a
 * decompression bomb), so its header is checked before anything is inflated or allocated.
 */
export const MAX_IMAGE_PIXELS = 89_478_485;

/** A larger image file is refused before it is read (the command line's and the page's). */
export const MAX_IMAGE_FILE_BYTES = 256 * 2 ** 20;

/** Refuses a file of `size` bytes over MAX_IMAGE_FILE_BYTES, in one line (the caller names it). */
export function checkImageFileSize(size: number): void {
  if (size > MAX_IMAGE_FILE_BYTES) {
    throw new Error(`${size} bytes, over the ${MAX_IMAGE_FILE_BYTES / 2 ** 20} MiB limit`);
  }
}

/** A PNG's width and height from its IHDR chunk (the first), or null when it has none. */
export function pngSize(bytes: Uint8Array): { width: number; height: number } | null {
  if (bytes.length < 24) return null;
  if (String.fromCharCode(...bytes.subarray(12, 16)) !== "IHDR") return null;
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  return { width: v.getUint32(16), height: v.getUint32(20) };
}

/** Samples a pixel by PNG colour type: grey, RGB, palette index, grey + alpha, RGBA. */
const PNG_SAMPLES: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
/** Adam7's seven passes: first column and row, column and row steps (PNG spec §8.2). */
const ADAM7: [number, number, number, number][] = [
  [0, 0, 8, 8],
  [4, 0, 8, 8],
  [0, 4, 4, 8],
  [2, 0, 4, 4],
  [0, 2, 2, 4],
  [1, 0, 2, 2],
  [0, 1, 1, 2],
];

/**
 * The bytes a PNG's image data inflates to, from its header: every row of every pass with its
 * filter byte; null when the header is not one to read (pngjs then says what is wrong).
 */
export function pngInflatedBytes(bytes: Uint8Array): number | null {
  const size = pngSize(bytes);
  if (!size || bytes.length < 29) return null;
  const depth = bytes[24], samples = PNG_SAMPLES[bytes[25]], interlaced = bytes[28] === 1;
  if (!samples || ![1, 2, 4, 8, 16].includes(depth)) return null;
  const rowBytes = (w: number) => 1 + Math.ceil((w * samples * depth) / 8);
  if (!interlaced) return size.height * rowBytes(size.width);
  let total = 0;
  for (const [x0, y0, dx, dy] of ADAM7) {
    const w = Math.ceil(Math.max(0, size.width - x0) / dx);
    const h = Math.ceil(Math.max(0, size.height - y0) / dy);
    if (w > 0 && h > 0) total += h * rowBytes(w);
  }
  return total;
}

/**
 * Walks a JPEG's segments from the start until `visit` returns a value: it is called with each
 * segment's marker and the offset of its marker byte pair, and sees at least the segment's first
 * 4 bytes. Null when the scan data or the end of the image comes first.
 */
function walkJpeg<T>(
  bytes: Uint8Array,
  visit: (marker: number, at: number, length: number) => T | null,
): T | null {
  let i = 2;
  while (i + 4 <= bytes.length) {
    if (bytes[i] !== 0xff) return null;
    const marker = bytes[i + 1];
    if (marker === 0xff) { // fill bytes before a marker
      i++;
      continue;
    }
    // markers without a length: TEM, RSTn, SOI
    if (marker === 0x01 || (marker >= 0xd0 && marker <= 0xd8)) {
      i += 2;
      continue;
    }
    if (marker === 0xd9 || marker === 0xda) return null; // end of image, or the data began
    const length = (bytes[i + 2] << 8) | bytes[i + 3];
    const found = visit(marker, i, length);
    if (found !== null) return found;
    i += 2 + length;
  }
  return null;
}

/**
 * A JPEG's width and height from its first start-of-frame segment (SOF0–SOF15 but DHT, JPG and
 * DAC), walking the segments from the start; null when there is none before the data ends.
 */
export function jpegSize(bytes: Uint8Array): { width: number; height: number } | null {
  return walkJpeg(bytes, (marker, i) => {
    const sof = marker >= 0xc0 && marker <= 0xcf && ![0xc4, 0xc8, 0xcc].includes(marker);
    if (!sof || i + 9 > bytes.length) return null;
    return {
      height: (bytes[i + 5] << 8) | bytes[i + 6],
      width: (bytes[i + 7] << 8) | bytes[i + 8],
    };
  });
}

/**
 * The EXIF orientation of a JPEG (1–8: how the stored pixels turn to be shown upright; TIFF 6.0
 * tag 0x0112), from its APP1 "Exif" segment's first directory; 1 when it has none or it cannot be
 * read. Browsers show (and createImageBitmap decodes) a photo turned by it, and diffusers'
 * load_image turns it (PIL's exif_transpose): the command line does the same.
 */
export function jpegOrientation(bytes: Uint8Array): number {
  const found = walkJpeg(bytes, (marker, i, length) => {
    if (marker !== 0xe1) return null;
    const end = Math.min(bytes.length, i + 2 + length);
    const tiff = i + 10; // after the length and "Exif\0\0"
    const exif = [0x45, 0x78, 0x69, 0x66, 0, 0].every((b, k) => bytes[i + 4 + k] === b);
    if (!exif || tiff + 8 > end) return null;
    const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const little = bytes[tiff] === 0x49; // "II", else "MM"
    const ifd = tiff + v.getUint32(tiff + 4, little);
    if (ifd + 2 > end) return 1;
    const count = v.getUint16(ifd, little);
    for (let k = 0; k < count; k++) {
      const e = ifd + 2 + 12 * k;
      if (e + 12 > end) break;
      // a SHORT's value sits in the first two bytes of the entry's value field
      if (v.getUint16(e, little) === 0x0112 && v.getUint16(e + 2, little) === 3) {
        const o = v.getUint16(e + 8, little);
        return o >= 1 && o <= 8 ? o : 1;
      }
    }
    return 1;
  });
  return found ?? 1;
}

/**
 * Refuses an image whose header declares more than MAX_IMAGE_PIXELS pixels, in one line that
 * starts with `kind` ("png", "jpeg").
 */
export function checkPixelCount(kind: string, size: { width: number; height: number } | null) {
  if (!size) return;
  const pixels = size.width * size.height;
  if (pixels > MAX_IMAGE_PIXELS) {
    const n = (x: number) => x.toLocaleString("en");
    throw new Error(
      `${kind}: ${size.width}×${size.height} is ${n(pixels)} pixels, over the ` +
        `${n(MAX_IMAGE_PIXELS)} an image may have (a decompression bomb?): use a smaller image`,
    );
  }
}
