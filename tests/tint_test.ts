// io/tint.ts, the LoRA demo's recolouring: luma along the tint's ramp, alpha kept.

import assert from "node:assert/strict";
import { tintRgba, TINTS } from "../io/tint.ts";

Deno.test("tintRgba: black, mid grey and white land on the ramp's stops; alpha is kept", () => {
  const px = Uint8Array.of(0, 0, 0, 255, 128, 128, 128, 10, 255, 255, 255, 0);
  const out = tintRgba(px, "blue");
  const [dark, , light] = TINTS.blue;
  assert.deepEqual([...out.subarray(0, 3)], dark);
  assert.deepEqual([...out.subarray(8, 11)], light);
  // luma 128/255 is just past ½: between the middle stop and the light one, near the middle
  const mid = TINTS.blue[1];
  for (let c = 0; c < 3; c++) {
    assert.ok(Math.abs(out[4 + c] - mid[c]) <= 2, `channel ${c}: ${out[4 + c]} vs ${mid[c]}`);
  }
  assert.deepEqual([out[3], out[7], out[11]], [255, 10, 0]);
});

Deno.test("tintRgba: a colour's hue is gone, its brightness order kept", () => {
  // red, green and blue of the same byte differ in luma: green brightest, blue darkest
  const px = Uint8Array.of(200, 0, 0, 255, 0, 200, 0, 255, 0, 0, 200, 255);
  const out = tintRgba(px, "blue");
  const sum = (i: number) => out[i] + out[i + 1] + out[i + 2];
  assert.ok(sum(4) > sum(0) && sum(0) > sum(8), `${[...out]}`);
  // every pixel is bluish: its blue channel the largest
  for (let i = 0; i < out.length; i += 4) {
    assert.ok(out[i + 2] >= out[i] && out[i + 2] >= out[i + 1]);
  }
});
