import assert from "node:assert/strict";
import { PNG } from "pngjs";
import { Buffer } from "node:buffer";
import {
  decodePng,
  encodePng,
  imageGrid,
  type RawImage,
  toByte,
  writeImageGrid,
  writePng,
} from "../io/png.ts";
import { pngFile } from "./png_fixtures.ts";

/** A file read back by pngjs itself, not by the code under test: size, colour type, RGBA. */
function readByPngjs(bytes: Uint8Array) {
  return PNG.sync.read(Buffer.from(bytes)) as {
    width: number;
    height: number;
    depth: number;
    colorType: number;
    data: Uint8Array;
  };
}

/** `pixels` of `channels` channels as pngjs's RGBA (grey spread to R, G, B; alpha 255 if none). */
function asRgba(pixels: Uint8Array, channels: number): number[] {
  const out: number[] = [];
  for (let i = 0; i < pixels.length / channels; i++) {
    const p = pixels.subarray(i * channels, (i + 1) * channels);
    const grey = channels <= 2;
    out.push(p[0], grey ? p[0] : p[1], grey ? p[0] : p[2]);
    out.push(channels === 2 ? p[1] : channels === 4 ? p[3] : 255);
  }
  return out;
}

function pattern(n: number, seed: number): Uint8Array {
  const a = new Uint8Array(n);
  let s = seed;
  for (let i = 0; i < n; i++) {
    s = (Math.imul(s, 1664525) + 1013904223) >>> 0;
    // smooth gradients and noise, so the encoder's filters get varied rows
    a[i] = i % 7 < 3 ? (i * 3) & 0xff : s >>> 24;
  }
  return a;
}

Deno.test("encodePng: grey, grey+alpha, RGB, RGBA, odd sizes, read back by pngjs", () => {
  const colourType: Record<number, number> = { 1: 0, 2: 4, 3: 2, 4: 6 };
  for (const [w, h, c] of [[1, 1, 1], [5, 3, 1], [17, 9, 3], [32, 32, 3], [7, 4, 4], [3, 8, 2]]) {
    const px = pattern(w * h * c, w * 31 + h);
    const png = encodePng(w, h, c as 1 | 2 | 3 | 4, px);
    const back = readByPngjs(png);
    assert.equal(back.width, w);
    assert.equal(back.height, h);
    assert.equal(back.depth, 8);
    assert.equal(back.colorType, colourType[c]);
    assert.deepEqual([...back.data], asRgba(px, c));
    // and decodePng gives the bytes back in the file's own channels
    const img = decodePng(png);
    assert.deepEqual([img.width, img.height, img.channels], [w, h, c]);
    assert.deepEqual(img.pixels, px);
  }
  assert.throws(() => encodePng(2, 2, 1, new Uint8Array(3)), /expected 4 bytes/);
  assert.throws(() => encodePng(0, 2, 1, new Uint8Array(0)), /bad size/);
});

Deno.test("decodePng: palette, tRNS, 16-bit and 1-bit files; damaged files are errors", () => {
  const plte = decodePng(pngFile({
    width: 3,
    height: 1,
    depth: 8,
    colorType: 3,
    samples: [2, 0, 1],
    palette: [[255, 0, 0], [0, 255, 0], [0, 0, 255]],
  }));
  assert.equal(plte.channels, 3);
  assert.deepEqual([...plte.pixels], [0, 0, 255, 255, 0, 0, 0, 255, 0]);
  // a palette with transparency becomes RGBA
  const trns = decodePng(pngFile({
    width: 2,
    height: 1,
    depth: 4,
    colorType: 3,
    samples: [1, 0],
    palette: [[10, 20, 30], [40, 50, 60]],
    trns: [0, 128],
  }));
  assert.equal(trns.channels, 4);
  assert.deepEqual([...trns.pixels], [40, 50, 60, 128, 10, 20, 30, 0]);
  // 16-bit grey rounds to bytes; 1-bit grey is 0 or 255
  const g16 = decodePng(
    pngFile({ width: 2, height: 1, depth: 16, colorType: 0, samples: [0, 65535] }),
  );
  assert.deepEqual([g16.channels, ...g16.pixels], [1, 0, 255]);
  const g1 = decodePng(
    pngFile({ width: 9, height: 1, depth: 1, colorType: 0, samples: [1, 0, 0, 0, 0, 0, 0, 0, 1] }),
  );
  assert.deepEqual([...g1.pixels], [255, 0, 0, 0, 0, 0, 0, 0, 255]);
  // a grey colour key adds an alpha channel
  const key = decodePng(
    pngFile({ width: 2, height: 1, depth: 8, colorType: 0, samples: [7, 9], trns: [7] }),
  );
  assert.equal(key.channels, 2);
  assert.deepEqual([...key.pixels], [0, 0, 9, 255]);

  const png = encodePng(4, 4, 1, new Uint8Array(16));
  const broken = png.slice();
  broken[20] ^= 1; // inside IHDR
  assert.throws(() => decodePng(broken), /^Error: png: /);
  assert.throws(() => decodePng(png.subarray(0, png.length - 20)), /^Error: png: /);
  assert.throws(
    () => decodePng(new Uint8Array([1, 2, 3, 4, 5, 6, 7, 8, 9])),
    /png: not a PNG file/,
  );
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

Deno.test("writePng / writeImageGrid write files pngjs reads back", () => {
  const dir = Deno.makeTempDirSync({ prefix: "png_test_" });
  writePng(`${dir}/a/b.png`, 2, 1, 3, new Uint8Array([1, 2, 3, 4, 5, 6]));
  assert.deepEqual([...readByPngjs(Deno.readFileSync(`${dir}/a/b.png`)).data], [
    1,
    2,
    3,
    255,
    4,
    5,
    6,
    255,
  ]);
  const imgs = new Float32Array(64 * 32 * 32).map((_, i) => Math.sin(i));
  const g: RawImage = writeImageGrid(`${dir}/grid.png`, imgs, 64, 1, 32, 32);
  const d = readByPngjs(Deno.readFileSync(`${dir}/grid.png`));
  assert.equal(d.width, 274);
  assert.equal(d.height, 274);
  assert.equal(d.colorType, 0);
  assert.deepEqual([...d.data], asRgba(g.pixels, 1));
  Deno.removeSync(dir, { recursive: true });
});
