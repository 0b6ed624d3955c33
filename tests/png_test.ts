import assert from "node:assert/strict";
import {
  crc32,
  decodePng,
  encodePng,
  imageGrid,
  toByte,
  writeImageGrid,
  writePng,
} from "../io/png.ts";

Deno.test("crc32 check value", () => {
  assert.equal(crc32(new TextEncoder().encode("123456789")), 0xcbf43926);
  assert.equal(crc32(new Uint8Array()), 0);
});

function pattern(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    // mix smooth gradients and noise so every filter type gets picked somewhere
    a[i] = i % 7 < 3 ? (i * 3) & 0xff : s >>> 24;
  }
  return a;
}

Deno.test("PNG round trip: grey, RGB, RGBA, odd sizes", () => {
  for (const [w, h, c] of [[1, 1, 1], [5, 3, 1], [17, 9, 3], [32, 32, 3], [7, 4, 4], [3, 8, 2]]) {
    const px = pattern(w * h * c, w * 31 + h);
    const png = encodePng(w, h, c as 1 | 2 | 3 | 4, px);
    assert.deepEqual([...png.subarray(0, 8)], [137, 80, 78, 71, 13, 10, 26, 10]);
    const img = decodePng(png);
    assert.equal(img.width, w);
    assert.equal(img.height, h);
    assert.equal(img.channels, c);
    assert.deepEqual(img.pixels, px);
  }
  assert.throws(() => encodePng(2, 2, 1, new Uint8Array(3)), /expected 4 bytes/);
  const png = encodePng(4, 4, 1, new Uint8Array(16));
  const broken = png.slice();
  broken[20] ^= 1; // inside IHDR
  assert.throws(() => decodePng(broken), /CRC mismatch in chunk IHDR/);
  assert.throws(() => decodePng(png.subarray(0, png.length - 12)), /missing IEND/);
});

Deno.test("imageGrid: 8×8 of 32×32 with 2-px padding is 274×274", () => {
  const n = 64, C = 1, H = 32, W = 32;
  const imgs = new Float32Array(n * C * H * W);
  for (let k = 0; k < n; k++) imgs.fill(k / 63 * 2 - 1, k * H * W, (k + 1) * H * W);
  const g = imageGrid(imgs, n, C, H, W);
  assert.equal(g.width, 274);
  assert.equal(g.height, 274);
  assert.equal(g.channels, 1);
  assert.equal(g.pixels.length, 274 * 274);
  // padding is black; tile (row 1, col 2) = image 10 starts at (x, y) = (2 + 2·34, 2 + 34)
  assert.equal(g.pixels[0], 0);
  assert.equal(g.pixels[274 * 35 + 70], 0); // padding row above the tile
  assert.equal(g.pixels[274 * 36 + 70], toByte(10 / 63 * 2 - 1));
  assert.equal(g.pixels[274 * (36 + 31) + 70 + 31], toByte(10 / 63 * 2 - 1));
  assert.equal(g.pixels[274 * 36 + 70 + 32], 0); // padding column right of it
  // last image, last pixel: white, then the 2-pixel border
  assert.equal(g.pixels[274 * 271 + 271], 255);
  assert.equal(g.pixels[274 * 272 + 271], 0);
  // value mapping like torchvision save_image, clamped
  assert.equal(toByte(-1), 0);
  assert.equal(toByte(1), 255);
  assert.equal(toByte(0), 128);
  assert.equal(toByte(-3), 0);
  assert.equal(toByte(7), 255);
  assert.equal(toByte(NaN), 0);
});

Deno.test("imageGrid: RGB, partial last row, few images", () => {
  const C = 3, H = 4, W = 5, n = 5;
  const imgs = new Float32Array(n * C * H * W).fill(1);
  // image 4, channel 1 (green) all -1
  imgs.fill(-1, (4 * C + 1) * H * W, (4 * C + 2) * H * W);
  const g = imageGrid(imgs, n, C, H, W, 3, 1);
  assert.equal(g.width, 3 * 5 + 4);
  assert.equal(g.height, 2 * 4 + 3);
  assert.equal(g.channels, 3);
  const at = (
    x: number,
    y: number,
  ) => [...g.pixels.subarray((y * g.width + x) * 3, (y * g.width + x) * 3 + 3)];
  assert.deepEqual(at(1, 1), [255, 255, 255]);
  assert.deepEqual(at(1 + 6, 1 + 5), [255, 0, 255]); // image 4 at row 1, col 1
  assert.deepEqual(at(1 + 12, 1 + 5), [0, 0, 0]); // empty slot stays black
  const one = imageGrid(new Float32Array(2 * 1 * 2 * 2), 2, 1, 2, 2);
  assert.equal(one.width, 2 * 2 + 3 * 2); // cols = min(8, n)
});

Deno.test("writePng / writeImageGrid write decodable files", () => {
  const dir = Deno.makeTempDirSync({ prefix: "png_test_" });
  writePng(`${dir}/a/b.png`, 2, 1, 3, new Uint8Array([1, 2, 3, 4, 5, 6]));
  assert.deepEqual([...decodePng(Deno.readFileSync(`${dir}/a/b.png`)).pixels], [1, 2, 3, 4, 5, 6]);
  const imgs = new Float32Array(64 * 32 * 32).map((_, i) => Math.sin(i));
  const g = writeImageGrid(`${dir}/grid.png`, imgs, 64, 1, 32, 32);
  const d = decodePng(Deno.readFileSync(`${dir}/grid.png`));
  assert.equal(d.width, 274);
  assert.equal(d.height, 274);
  assert.deepEqual(d.pixels, g.pixels);
  Deno.removeSync(dir, { recursive: true });
});
