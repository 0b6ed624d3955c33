import assert from "node:assert/strict";
import jpeg from "jpeg-js";
import { decodeImage, imageToSquare, LUMA_601, toChannels } from "../io/image_file.ts";
import { decodePng, encodePng, MAX_IMAGE_PIXELS, readPngRgba } from "../io/png.ts";
import { fitSquare, resizeArea } from "../io/resize_area.ts";
import { bombPng, interlacedGreyPng, pngFile, pngHeader } from "./png_fixtures.ts";

const close = (a: ArrayLike<number>, b: ArrayLike<number>, tol = 1e-6) => {
  assert.equal(a.length, b.length);
  for (let i = 0; i < a.length; i++) {
    assert.ok(Math.abs(a[i] - b[i]) <= tol, `[${i}] ${a[i]} vs ${b[i]}`);
  }
};

Deno.test("decodeImage: grey, RGB, RGBA on white, palette, 16-bit PNG and JPEG", () => {
  // grey is replicated to R, G, B
  const grey = decodeImage(encodePng(2, 1, 1, new Uint8Array([0, 51])));
  assert.deepEqual([grey.width, grey.height], [2, 1]);
  close(grey.rgb, [0, 0.2, 0, 0.2, 0, 0.2]);
  // RGB planes [3, h, w]
  const rgb = decodeImage(encodePng(2, 1, 3, new Uint8Array([255, 0, 51, 0, 102, 255])));
  close(rgb.rgb, [1, 0, 0, 0.4, 0.2, 1]);
  // alpha composited on white: a·c + (1 − a)
  const rgba = decodeImage(
    encodePng(3, 1, 4, new Uint8Array([255, 0, 0, 255, 255, 0, 0, 0, 0, 0, 255, 51])),
  );
  close(rgba.rgb, [1, 1, 0.8, 0, 1, 0.8, 0, 1, 1]);
  // grey + alpha
  const ga = decodeImage(encodePng(1, 1, 2, new Uint8Array([0, 102])));
  close(ga.rgb, [0.6, 0.6, 0.6]);
  // a palette with one half-transparent entry
  const pal = decodeImage(pngFile({
    width: 2,
    height: 1,
    depth: 8,
    colorType: 3,
    samples: [0, 1],
    palette: [[0, 0, 255], [255, 0, 0]],
    trns: [255, 0],
  }));
  close(pal.rgb, [0, 1, 0, 1, 1, 1]);
  // 16-bit keeps its precision: 1/65535 is not a multiple of 1/255
  const g16 = decodeImage(
    pngFile({ width: 2, height: 1, depth: 16, colorType: 0, samples: [1, 32768] }),
  );
  close(g16.rgb.subarray(0, 2), [1 / 65535, 32768 / 65535], 1e-7);
  // JPEG: a flat colour comes back within a few levels
  const w = 16, h = 8;
  const data = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) data.set([200, 40, 90, 255], i * 4);
  const jpg = decodeImage(jpeg.encode({ width: w, height: h, data }, 100).data);
  assert.deepEqual([jpg.width, jpg.height], [w, h]);
  for (const [c, v] of [[0, 200], [1, 40], [2, 90]]) {
    for (let i = 0; i < w * h; i++) assert.ok(Math.abs(jpg.rgb[c * w * h + i] * 255 - v) <= 3);
  }
  assert.throws(() => decodeImage(new TextEncoder().encode("GIF89a...")), /not a PNG or JPEG/);
  assert.throws(
    () => decodeImage(new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16])),
    /^Error: jpeg: /,
  );
});

Deno.test("toChannels: RGB to grey by BT.601 luma, RGB unchanged", () => {
  assert.deepEqual([...LUMA_601], [0.299, 0.587, 0.114]);
  const rgb = Float32Array.from([1, 0.2, 0, 0.4, 0, 0.6]); // two pixels: (1, 0, 0), (0.2, 0.4, 0.6)
  close(toChannels(rgb, 1), [0.299, 0.299 * 0.2 + 0.587 * 0.4 + 0.114 * 0.6]);
  assert.equal(toChannels(rgb, 3), rgb);
});

Deno.test("resizeArea: the mean of the covered area, for integer and fractional ratios", () => {
  // 4 → 2: means of 2×2 blocks
  const a = Float32Array.from({ length: 16 }, (_, i) => i);
  close(resizeArea(a, 1, 1, 4, 4, 2, 2), [
    (0 + 1 + 4 + 5) / 4,
    (2 + 3 + 6 + 7) / 4,
    (8 + 9 + 12 + 13) / 4,
    (10 + 11 + 14 + 15) / 4,
  ]);
  // 3 → 2: each output covers 1.5 × 1.5 pixels; the middle row and column count half
  const [p, q, r, s, t, u, v, w, x] = [1, 2, 3, 4, 5, 6, 7, 8, 9];
  const b = Float32Array.from([p, q, r, s, t, u, v, w, x]);
  close(resizeArea(b, 1, 1, 3, 3, 2, 2), [
    (p + q / 2 + s / 2 + t / 4) / 2.25,
    (r + q / 2 + u / 2 + t / 4) / 2.25,
    (v + s / 2 + w / 2 + t / 4) / 2.25,
    (x + u / 2 + w / 2 + t / 4) / 2.25,
  ]);
  // 2 → 3 along a row: the middle output straddles both pixels equally
  close(resizeArea(Float32Array.from([3, 9]), 1, 1, 1, 2, 1, 3), [3, 6, 9]);
  // 2 → 4: pixel replication
  close(resizeArea(Float32Array.from([3, 9]), 1, 1, 1, 2, 1, 4), [3, 3, 9, 9]);
  // 5 → 3: outputs cover [0, 5/3), [5/3, 10/3), [10/3, 5)
  const f = Float32Array.from([1, 2, 3, 4, 5]);
  close(resizeArea(f, 1, 1, 1, 5, 1, 3), [
    (1 + 2 * (2 / 3)) / (5 / 3),
    (2 / 3 + 3 + 4 / 3) / (5 / 3),
    (4 * (2 / 3) + 5) / (5 / 3),
  ]);
  // the mean is kept, and planes (images × channels) stay separate
  const g = Float32Array.from({ length: 2 * 3 * 7 * 5 }, (_, i) => Math.sin(i) + 1);
  const o = resizeArea(g, 2, 3, 7, 5, 3, 2);
  for (let k = 0; k < 6; k++) {
    const m = (arr: Float32Array, n: number) =>
      arr.subarray(k * n, (k + 1) * n).reduce((s, x) => s + x, 0) / n;
    assert.ok(Math.abs(m(g, 35) - m(o, 6)) < 1e-5);
  }
});

Deno.test("fitSquare: the short side scaled to the size, the long side centre-cropped", () => {
  // 2 high × 3 wide → 2: columns [0.5, 2.5) of the source, half of each edge column
  const wide = Float32Array.from([1, 2, 3, 4, 5, 6]);
  close(fitSquare(wide, 1, 1, 2, 3, 2), [1.5, 2.5, 4.5, 5.5]);
  // 4 high × 2 wide → 1: the middle two rows, averaged
  const tall = Float32Array.from([0, 0, 1, 2, 3, 4, 9, 9]);
  close(fitSquare(tall, 1, 1, 4, 2, 1), [2.5]);
  // 5 high × 2 wide → 2, two planes: rows [1.5, 3.5) only (the rest is never read, so a 1-wide
  // strip of 10⁸ rows costs one row of scratch); pixel (y, x) = 10y + x (+ 100 in plane 2)
  const strip = Float32Array.from(
    { length: 20 },
    (_, i) => (i >= 10 ? 100 : 0) + 10 * ((i % 10) >> 1) + (i & 1),
  );
  close(fitSquare(strip, 1, 2, 5, 2, 2), [15, 16, 25, 26, 115, 116, 125, 126]);
  // 3 × 5 → 2: the centre 3 × 3 square (columns 1 … 3), then 3 → 2 as above
  const m = Float32Array.from({ length: 15 }, (_, i) => i);
  const sq = Float32Array.from([1, 2, 3, 6, 7, 8, 11, 12, 13]);
  close(fitSquare(m, 1, 1, 3, 5, 2), resizeArea(sq, 1, 1, 3, 3, 2, 2));
  // a square source is only resized
  close(fitSquare(sq, 1, 1, 3, 3, 2), resizeArea(sq, 1, 1, 3, 3, 2, 2));
  // whole pipeline: a 4×2 RGB PNG, left half red, right half blue, to a grey 1×1
  const px = new Uint8Array(4 * 2 * 3);
  for (let y = 0; y < 2; y++) {
    for (let x = 0; x < 4; x++) px.set(x < 2 ? [255, 0, 0] : [0, 0, 255], (y * 4 + x) * 3);
  }
  close(imageToSquare(encodePng(4, 2, 3, px), 1, 1), [(0.299 + 0.114) / 2]);
  close(imageToSquare(encodePng(4, 2, 3, px), 2, 3), [1, 0, 1, 0, 0, 0, 0, 0, 0, 1, 0, 1]);
});

Deno.test("a PNG whose header asks for more pixels than MAX_IMAGE_PIXELS is refused before decoding", () => {
  assert.equal(MAX_IMAGE_PIXELS, 89_478_485); // Pillow's Image.MAX_IMAGE_PIXELS
  // 90 KB that inflate to 90,000,000 pixels; its header is all the refusal reads
  const bomb = bombPng(10000, 9000);
  assert.ok(bomb.length < 200_000);
  const refused =
    /^Error: png: 10000×9000 is 90,000,000 pixels, over the 89,478,485 an image may have \(a decompression bomb\?\): use a smaller image$/;
  assert.throws(() => decodeImage(bomb), refused);
  assert.throws(() => readPngRgba(bomb), refused);
  assert.throws(() => decodePng(bomb), refused);
  // a header alone (its data cut off) is enough to refuse the largest
  const huge = pngHeader(50000, 50000);
  assert.throws(
    () => decodeImage(huge),
    /^Error: png: 50000×50000 is 2,500,000,000 pixels, over the/,
  );
  // up to the limit, images decode as before
  const ok = decodeImage(
    pngFile({ width: 3, height: 2, depth: 8, colorType: 0, samples: [0, 255, 0, 255, 0, 255] }),
  );
  assert.deepEqual([ok.width, ok.height], [3, 2]);
});

/** A JPEG with an APP1 EXIF segment holding only an orientation, in either byte order. */
function withOrientation(jpg: Uint8Array, o: number, little: boolean): Uint8Array {
  const tiff = new Uint8Array(8 + 2 + 12 + 4);
  const v = new DataView(tiff.buffer);
  tiff.set(little ? [0x49, 0x49] : [0x4d, 0x4d]);
  v.setUint16(2, 42, little);
  v.setUint32(4, 8, little); // the first directory, right after the header
  v.setUint16(8, 1, little); // one entry
  v.setUint16(10, 0x0112, little); // Orientation
  v.setUint16(12, 3, little); // SHORT
  v.setUint32(14, 1, little);
  v.setUint16(18, o, little);
  const body = [...new TextEncoder().encode("Exif"), 0, 0, ...tiff];
  const app1 = [0xff, 0xe1, (body.length + 2) >> 8, (body.length + 2) & 0xff, ...body];
  return Uint8Array.from([...jpg.subarray(0, 2), ...app1, ...jpg.subarray(2)]);
}

Deno.test("a JPEG is turned upright by its EXIF orientation, as browsers show it", () => {
  // 16×8: the left half red, the right half blue, the top-left quarter's top rows green
  const w = 16, h = 8;
  const data = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const rgb = x < 8 ? (y < 4 && x < 4 ? [0, 255, 0] : [255, 0, 0]) : [0, 0, 255];
      data.set([...rgb, 255], 4 * (y * w + x));
    }
  }
  const jpg = jpeg.encode({ width: w, height: h, data }, 100).data;
  const at = (img: { width: number; height: number; rgb: Float32Array }, x: number, y: number) => {
    const n = img.width * img.height, i = y * img.width + x;
    return [0, 1, 2].map((c) => Math.round(img.rgb[c * n + i]));
  };
  const upright = decodeImage(jpg);
  for (const little of [true, false]) {
    assert.deepEqual(decodeImage(withOrientation(jpg, 1, little)).rgb, upright.rgb);
    // 6: a quarter turn clockwise: 8 wide, 16 tall, the left half on top, green at the top right
    const turned = decodeImage(withOrientation(jpg, 6, little));
    assert.deepEqual([turned.width, turned.height], [8, 16]);
    assert.deepEqual(at(turned, 6, 1), [0, 1, 0], "green at the top right");
    assert.deepEqual(at(turned, 1, 1), [1, 0, 0], "red at the top left");
    assert.deepEqual(at(turned, 4, 12), [0, 0, 1], "blue below");
    // 3: half a turn: blue on the left, green at the bottom right
    const half = decodeImage(withOrientation(jpg, 3, little));
    assert.deepEqual([half.width, half.height], [16, 8]);
    assert.deepEqual(at(half, 1, 1), [0, 0, 1]);
    assert.deepEqual(at(half, 14, 6), [0, 1, 0]);
    // 8: a quarter turn anticlockwise: the left half below, green at the bottom left
    const back = decodeImage(withOrientation(jpg, 8, little));
    assert.deepEqual(at(back, 1, 14), [0, 1, 0]);
    assert.deepEqual(at(back, 4, 2), [0, 0, 1]);
  }
});

Deno.test("an interlaced PNG's data is bounded by its header before pngjs inflates it", () => {
  // 2×2 in Adam7: pass 1 holds (0, 0), pass 6 (1, 0), pass 7 the second row; a filter byte a row
  const small = interlacedGreyPng(2, 2, Uint8Array.from([0, 10, 0, 20, 0, 30, 40]));
  assert.deepEqual(Array.from(readPngRgba(small).data.filter((_, i) => i % 4 === 0)), [
    10,
    20,
    30,
    40,
  ]);
  // 1×1 (2 bytes of image data) whose IDAT inflates to 50 MB of zeros
  const bomb = interlacedGreyPng(1, 1, new Uint8Array(50_000_000));
  assert.ok(bomb.length < 100_000, `${bomb.length} bytes`);
  assert.throws(
    () => readPngRgba(bomb),
    /^Error: png: its image data inflates past the 2 bytes its header allows \(a decompression bomb\?\): use another image$/,
  );
});
