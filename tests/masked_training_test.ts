// Masked training (MaskDiT; train/batch.ts, model/pixart.ts, kernels/take_rows.ts): the row
// gather and its transpose against a reference and finite differences; a mask that keeps every
// token in order leaves the forward pass unchanged; the mask draw and its pixel map.

import assert from "node:assert/strict";
import { noGrad, takeRows, tensor } from "../kernels/mod.ts";
import { PixArt } from "../model/pixart.ts";
import { drawTokenMask, keptPixels } from "../train/batch.ts";
import { check } from "./gradcheck.ts";
import { rand, ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

Deno.test("takeRows: rows in a given order, zeros for −1; backward through the inverse map", async () => {
  const R = 5, D = 3;
  for (const src of [[3, -1, 0, 4], [4, 3, 2, 1, 0], [-1, -1], [2]]) {
    await check({
      name: `takeRows [${src}]`,
      inputs: [{ shape: [R, D] }],
      gpu: ([x]) => takeRows(x, Int32Array.from(src)),
      ref: ([x]) => {
        const out = new Float64Array(src.length * D);
        src.forEach((r, m) => {
          if (r >= 0) { for (let d = 0; d < D; d++) out[m * D + d] = x[r * D + d]; }
        });
        return out;
      },
    });
  }
  assert.throws(() => takeRows(tensor(rand(R * D), [R, D]), Int32Array.of(1, 1)), /taken twice/);
  assert.throws(() => takeRows(tensor(rand(R * D), [R, D]), Int32Array.of(5)), /outside 0\.\.4/);
});

Deno.test("a mask that keeps every token in order changes nothing", async () => {
  const c = TINY_TEXT_MODEL;
  const model = PixArt.init(c, 3);
  try {
    model.params.set("final_layer.linear.weight", tensor(rand(4 * 32, 9, 0.5), [4, 32]));
    const B = 3, N = (c.image_size / c.patch_size) ** 2;
    const x = rand(B * c.image_size ** 2, 4);
    const cond = {
      kind: "text" as const,
      ...model.tokenize(["seven", "3", "two"]),
      drop: new Uint8Array(B),
    };
    const all = {
      keep: Int32Array.from({ length: B * N }, (_, i) => i % N),
      perImage: N,
      blocks: 1,
    };
    const [plain, masked] = noGrad(() =>
      [undefined, all].map((mask) =>
        model.forward(tensor(x, [B, 1, 8, 8]), [10, 500, 900], cond, { mask })
      )
    );
    assert.deepEqual(await masked.read(), await plain.read());
    // half the tokens: another output, of the same shape, finite
    const half = drawTokenMask(c, B, 0.5, 1, 7);
    const out = noGrad(() =>
      model.forward(tensor(x, [B, 1, 8, 8]), [10, 500, 900], cond, { mask: half })
    );
    const v = await out.read();
    assert.equal(v.length, B * 64);
    assert.ok(v.every(Number.isFinite));
    assert.notDeepEqual(v, await plain.read());
  } finally {
    model.dispose();
  }
});

Deno.test("the mask draw: K distinct increasing tokens per image, and the pixels they cover", () => {
  const c = { ...TINY_TEXT_MODEL, image_size: 8, patch_size: 2, in_channels: 3 };
  const m = drawTokenMask(c, 4, 0.5, 1, 11);
  assert.equal(m.perImage, 8);
  assert.equal(m.blocks, c.depth - 1);
  for (let b = 0; b < 4; b++) {
    const row = [...m.keep.slice(b * 8, b * 8 + 8)];
    assert.deepEqual(row, [...row].sort((p, q) => p - q));
    assert.equal(new Set(row).size, 8);
    assert.ok(row.every((k) => k >= 0 && k < 16));
  }
  assert.notDeepEqual([...m.keep.slice(0, 8)], [...m.keep.slice(8, 16)]);
  assert.deepEqual(drawTokenMask(c, 4, 0.5, 1, 11).keep, m.keep); // seeded
  const px = keptPixels(c, m, 4);
  // half the tokens → half the pixels, and a kept token's 2×2 patch in every channel
  assert.equal(px.reduce((a, b) => a + b, 0), 4 * 3 * 64 / 2);
  const tok = m.keep[0], y = Math.floor(tok / 4) * 2, x = (tok % 4) * 2;
  for (const ch of [0, 1, 2]) assert.equal(px[(ch * 8 + y + 1) * 8 + x + 1], 1);
  assert.throws(() => drawTokenMask(c, 1, 0.5, c.depth, 1), /mask_decoder_blocks/);
});
