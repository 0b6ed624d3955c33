// model.wavelet haar (model/wavelet.ts): the transform against a written-out reference and its
// inverse; a stage-3 Haar model started from a stage-2 pixel model draws that model's image as its
// low band and no detail; sampling returns images, and edits keep what they keep to the bit.

import assert from "node:assert/strict";
import { join } from "node:path";
import { noGrad, tensor } from "../kernels/mod.ts";
import { haarForward, haarInverse, haarMask } from "../model/wavelet.ts";
import { saveCheckpoint } from "../model/checkpoint.ts";
import { readCheckpoint } from "../model/checkpoint.ts";
import { type ModelConfig, modelSpace } from "../model/config.ts";
import { PixArt } from "../model/pixart.ts";
import { checkModelSection } from "../io/config_schema.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { ancestralThreshold, generate } from "../diffusion/generate.ts";
import { initFromEarlierStage } from "../train/model_init.ts";
import { maxAbs, rand, ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

const dir = Deno.makeTempDirSync({ prefix: "pixart-wavelet-" });
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test("haarForward: block means and orthonormal details, against a written-out reference; haarInverse undoes it", () => {
  const n = 2, C = 3, S = 6, h = S / 2;
  const x = rand(n * C * S * S, 7);
  const y = haarForward(x, n, C, S);
  const px = (b: number, c: number, i: number, j: number) => x[((b * C + c) * S + i) * S + j];
  const band = (b: number, k: number, c: number, i: number, j: number) =>
    y[((b * 4 * C + k * C + c) * h + i) * h + j];
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < h; i++) {
        for (let j = 0; j < h; j++) {
          const [a, r, d, e] = [
            px(b, c, 2 * i, 2 * j),
            px(b, c, 2 * i, 2 * j + 1),
            px(b, c, 2 * i + 1, 2 * j),
            px(b, c, 2 * i + 1, 2 * j + 1),
          ];
          const want = [
            (a + r + d + e) / 4,
            (a - r + d - e) / 2,
            (a + r - d - e) / 2,
            (a - r - d + e) / 2,
          ];
          for (let k = 0; k < 4; k++) {
            assert.ok(
              Math.abs(band(b, k, c, i, j) - want[k]) < 1e-6,
              `band ${k} at ${b},${c},${i},${j}`,
            );
          }
          // twice the mean and the details are an orthonormal basis: the block's energy is kept
          const energy = (2 * want[0]) ** 2 + want[1] ** 2 + want[2] ** 2 + want[3] ** 2;
          assert.ok(Math.abs(energy - (a * a + r * r + d * d + e * e)) < 1e-5);
        }
      }
    }
  }
  assert.ok(maxAbs(haarInverse(y, n, C, S), x) < 1e-6);
  // a block is repainted when any of its pixels is
  const mask = new Float32Array(S * S);
  mask[1] = 0.7; // block (0, 0)
  mask[S * 3 + 4] = 0.4; // below ½: kept
  assert.deepEqual([...haarMask(mask, 1, S)], [1, 0, 0, 0, 0, 0, 0, 0, 0]);
});

Deno.test("model.wavelet haar: the model draws 4C channels at half the side; bad sizes are one-line errors", () => {
  const m = { ...TINY_TEXT_MODEL, image_size: 16, in_channels: 3, wavelet: "haar" as const };
  assert.deepEqual(modelSpace(m), { channels: 12, size: 8 });
  const fail = (msg: string): never => {
    throw new Error(msg);
  };
  assert.throws(
    () => checkModelSection({ ...m, image_size: 15 }, fail),
    /^Error: 'model\.wavelet' haar halves the image: 'model\.image_size' must be even, got 15$/,
  );
  assert.throws(
    () => checkModelSection({ ...m, image_size: 12, patch_size: 4 }, fail),
    /^Error: 'model\.patch_size' \(4\) must divide 'model\.image_size' \(12, halved by model\.wavelet haar\)$/,
  );
});

/** A stage-2 RGB model with every weight drawn, so that its output layer is not zero. */
function drawnModel(c: ModelConfig, seed: number): PixArt {
  const m = PixArt.init(c, seed);
  for (const name of m.params.names()) {
    const t = m.params.get(name);
    m.params.set(name, tensor(rand(t.size, name.length + seed, 0.3), t.shape));
  }
  return m;
}

Deno.test("stage 3 on Haar bands starts as the stage-2 model: its low band, and no detail", async () => {
  const small: ModelConfig = { ...TINY_TEXT_MODEL, in_channels: 3 };
  const big: ModelConfig = { ...small, image_size: 16, wavelet: "haar" };
  const trained = drawnModel(small, 5);
  const path = join(dir, "stage2.safetensors");
  await saveCheckpoint(path, trained, { step: 1 });
  const haar = PixArt.init(big, 9);
  const lines: string[] = [];
  initFromEarlierStage(haar, { ck: readCheckpoint(path), name: path }, 3, (l) => lines.push(l));
  assert.match(lines.join("\n"), /Haar bands: .* the low band starts as the 8×8 model/);
  assert.doesNotMatch(lines.join("\n"), /note: the positions span/);
  const B = 2, plane = 8 * 8, bands = rand(B * 12 * plane, 3);
  const low = Float32Array.from(
    { length: B * 3 * plane },
    (_, k) => bands[Math.floor(k / (3 * plane)) * 12 * plane + (k % (3 * plane))],
  );
  const cond = (m: PixArt) => ({
    kind: "text" as const,
    ...m.tokenize(["seven", "two"]),
    drop: new Uint8Array(B),
  });
  const [a, b] = noGrad(() => [
    trained.forward(tensor(low, [B, 3, 8, 8]), [100, 700], cond(trained)),
    haar.forward(tensor(bands, [B, 12, 8, 8]), [100, 700], cond(haar)),
  ]);
  const want = await a.read(), got = await b.read();
  for (let bi = 0; bi < B; bi++) {
    const g = got.subarray(bi * 12 * plane, (bi + 1) * 12 * plane);
    const w = want.subarray(bi * 3 * plane, (bi + 1) * 3 * plane);
    assert.ok(
      maxAbs(g.subarray(0, 3 * plane), w) < 1e-4,
      `sample ${bi}: the low band is stage 2's`,
    );
    assert.ok(g.subarray(3 * plane).every((v) => v === 0), `sample ${bi}: no detail`);
  }
  // the bands and a larger patch at once are refused; so is going back to pixels
  const both = PixArt.init({ ...big, patch_size: 4 }, 1);
  assert.throws(
    () => initFromEarlierStage(both, { ck: readCheckpoint(path), name: path }, 3, () => {}),
    /adds model\.wavelet haar to '.*' and changes model\.patch_size: keep the patch \(2\)/,
  );
  // the low band is the half-size image: only twice stage 2's side
  const wide = PixArt.init({ ...big, image_size: 32 }, 1);
  assert.throws(
    () => initFromEarlierStage(wide, { ck: readCheckpoint(path), name: path }, 3, () => {}),
    /adds model\.wavelet haar to the 8×8 model '.*': set model\.image_size to 16/,
  );
  for (const m of [trained, haar, both, wide]) m.dispose();
});

Deno.test("a Haar model samples images, and its edits keep the start image to the bit", async () => {
  const c: ModelConfig = { ...TINY_TEXT_MODEL, in_channels: 3, image_size: 16, wavelet: "haar" };
  const model = drawnModel(c, 4), schedule = linearSchedule(), n = 2, plane = 16 * 16;
  const o = { sampler: "dpm-solver" as const, steps: 3, guidance: 2, seed: 1 };
  const drawn = await generate(model, schedule, ["seven", "two"], [], o);
  assert.equal(drawn.length, n * 3 * plane);
  const init = rand(n * 3 * plane, 8);
  const back = await generate(model, schedule, ["seven", "two"], [], {
    ...o,
    initImage: init,
    strength: 0,
  });
  assert.deepEqual(back, init, "strength 0");
  // the left half repainted, at an odd column so that one column of blocks is half known
  const mask = new Float32Array(plane).map((_, i) => (i % 16 < 7 ? 1 : 0));
  const out = await generate(model, schedule, ["seven", "two"], [], {
    ...o,
    initImage: init,
    mask,
  });
  let kept = 0, changed = 0;
  for (let i = 0; i < out.length; i++) {
    if (mask[i % plane]) changed += Number(Math.abs(out[i] - init[i]) > 1e-3);
    else kept += Number(out[i] === init[i]);
  }
  assert.equal(kept, n * 3 * plane * 9 / 16, "every known pixel kept");
  assert.ok(changed > n * 3 * plane / 4, `the masked part is repainted (${changed} changed)`);
  model.dispose();
});

Deno.test("the ancestral sampler thresholds pixels, never Haar bands (details reach ±2)", () => {
  const pixels: ModelConfig = { ...TINY_TEXT_MODEL, in_channels: 3, image_size: 16 };
  assert.equal(ancestralThreshold(pixels), undefined); // the sampler's default, p 0.99, c 1.7
  assert.equal(ancestralThreshold({ ...pixels, wavelet: "haar" }), null);
  // a sharp edge inside a 2×2 block: the largest detail value, which a threshold would halve
  const edge = Float32Array.from([1, -1, 1, -1]);
  const bands = haarForward(edge, 1, 1, 2);
  assert.equal(Math.max(...bands.map(Math.abs)), 2);
});
