import assert from "node:assert/strict";
import jpeg from "jpeg-js";
import { isJpeg, isPng } from "../io/image_format.ts";
import { checkPixelCount, jpegSize, MAX_IMAGE_PIXELS, pngSize } from "../io/image_header.ts";
import { encodePng } from "../io/png.ts";
import { jpegHeader } from "./png_fixtures.ts";

Deno.test("an image's size from its header: PNG's IHDR, JPEG's first start-of-frame", () => {
  const png = encodePng(5, 3, 3, new Uint8Array(5 * 3 * 3));
  assert.ok(isPng(png) && !isJpeg(png));
  assert.deepEqual(pngSize(png), { width: 5, height: 3 });
  const data = new Uint8Array(7 * 4 * 4).fill(200);
  const jpg = new Uint8Array(jpeg.encode({ width: 7, height: 4, data }, 90).data);
  assert.ok(isJpeg(jpg) && !isPng(jpg));
  // jpeg-js writes APP0 (JFIF), quantisation tables and then SOF0: the walk skips the segments
  assert.deepEqual(jpegSize(jpg), { width: 7, height: 4 });
  // fill bytes before a marker are allowed
  const filled = new Uint8Array([0xff, 0xd8, 0xff, 0xff, ...jpg.subarray(3)]);
  assert.deepEqual(jpegSize(filled), { width: 7, height: 4 });
  // cut before the frame header: no size, and no read past the end
  const sof = jpg.findIndex((b, i) => b === 0xff && jpg[i + 1] === 0xc0);
  assert.equal(jpegSize(jpg.subarray(0, sof + 5)), null);
  assert.equal(pngSize(png.subarray(0, 20)), null);
});

Deno.test("a header that declares more than MAX_IMAGE_PIXELS pixels is refused in one line", () => {
  assert.doesNotThrow(() => checkPixelCount("jpeg", { width: 9459, height: 9459 }));
  assert.throws(
    () => checkPixelCount("jpeg", { width: 20000, height: 20000 }),
    new RegExp(
      `^Error: jpeg: 20000×20000 is 400,000,000 pixels, over the ` +
        `${MAX_IMAGE_PIXELS.toLocaleString("en")} an image may have \\(a decompression bomb\\?\\)`,
    ),
  );
  // a JPEG whose frame header claims 65535×65535
  const bomb = jpegHeader(65535, 65535);
  assert.deepEqual(jpegSize(bomb), { width: 65535, height: 65535 });
  assert.throws(() => checkPixelCount("jpeg", jpegSize(bomb)), /decompression bomb/);
});
