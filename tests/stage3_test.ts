// Stage 3 (docs/spec.md §7): the stage-2 model at twice the resolution, same patch size, every
// weight loaded unchanged and the position table interpolated; the quality filter on the data.

import assert from "node:assert/strict";
import { existsSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { decodePng } from "../io/png.ts";
import { readCheckpoint, saveCheckpoint } from "../model/checkpoint.ts";
import { PixArt } from "../model/pixart.ts";
import { initFromEarlierStage } from "../train/model_init.ts";
import { posEmbed2d } from "../model/embeddings.ts";
import { assertOk, assertOneLineError, sample, TINY, train } from "./cli_harness.ts";
import { ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

const dir = Deno.makeTempDirSync({ prefix: "pixart-stage3-" });
const tmp = (...p: string[]) => join(dir, ...p);
globalThis.addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));

Deno.test("the interpolated position table matches a written-out computation", () => {
  // D = 8 (two frequencies per axis half), a 4×4 grid at pe_interpolation 2: positions 0, .5, 1, 1.5
  const D = 8, grid = 4;
  const table = posEmbed2d(D, grid, grid, 2);
  const omega = [1, 1 / 100]; // 1/10000^(i/(D/4)), i = 0, 1
  for (let r = 0; r < grid; r++) {
    for (let c = 0; c < grid; c++) {
      const n = r * grid + c;
      const col = c / 2, row = r / 2;
      const want = [
        Math.sin(col * omega[0]),
        Math.sin(col * omega[1]),
        Math.cos(col * omega[0]),
        Math.cos(col * omega[1]),
        Math.sin(row * omega[0]),
        Math.sin(row * omega[1]),
        Math.cos(row * omega[0]),
        Math.cos(row * omega[1]),
      ];
      for (let k = 0; k < D; k++) {
        assert.ok(Math.abs(table[n * D + k] - want[k]) < 1e-6, `token ${n} channel ${k}`);
      }
    }
  }
  // the 4×4 grid at 2 spans what a 2×2 grid at 1 learned: its even tokens are that table
  const base = posEmbed2d(D, 2);
  for (const [r, c] of [[0, 0], [0, 1], [1, 0], [1, 1]]) {
    const fine = (2 * r * grid + 2 * c) * D, coarse = (r * 2 + c) * D;
    assert.deepEqual(table.subarray(fine, fine + D), base.subarray(coarse, coarse + D));
  }
});

Deno.test("stage 3 starts from stage 2 at twice the size, trains, and samples the new size", async () => {
  const s1 = tmp("s1"), s2 = tmp("s2"), s3 = tmp("s3");
  const common = ["--config", TINY, "--no-grid", "--steps", "2"];
  assertOk(await train(["--stage", "1", "--out", s1, ...common]));
  assertOk(await train(["--stage", "2", "--out", s2, "--init-from", s1, ...common]));
  const grow = ["--set", "model.image_size=32", "--set", "model.pe_interpolation=2"];

  // a stage-1 checkpoint is not a start for stage 3
  assertOneLineError(
    await train(["--stage", "3", "--out", tmp("bad"), "--init-from", s1, ...common, ...grow]),
    /^error: '.*checkpoint-2\.safetensors' is a stage-1 \(class-conditional\) checkpoint: stage 3 starts from a stage-2 \(text\) checkpoint$/,
  );
  // nor is a stage-2 model of another width
  assertOneLineError(
    await train([
      "--stage",
      "3",
      "--out",
      tmp("bad2"),
      "--init-from",
      s2,
      ...common,
      ...grow,
      "--set",
      "model.hidden_size=64",
    ]),
    /^error: '.*checkpoint-2\.safetensors' has model\.hidden_size = 32, the stage-3 config says 64/,
  );

  const r = await train(["--stage", "3", "--out", s3, "--init-from", s2, ...common, ...grow]);
  assertOk(r);
  const m = r.stderr.match(/initialised from '.*' \(trained weights\): (\d+) tensors loaded/);
  const stage2 = readCheckpoint(join(s2, "checkpoint-2.safetensors"));
  assert.equal(Number(m?.[1]), stage2.params.size, r.stderr);
  assert.match(r.stderr, /new, from their init: none/);
  assert.match(r.stderr, /position table is recomputed for 32×32 \(from 16\), pe_interpolation 2/);
  const ck = readCheckpoint(join(s3, "checkpoint-2.safetensors"));
  assert.equal(ck.model.image_size, 32);
  assert.equal(ck.model.pe_interpolation, 2);
  assert.equal(ck.metadata.train_stage, "3");
  // --resume of a stage-3 run is a stage-3 run
  assertOk(
    await train(["--stage", "3", "--out", s3, ...common, ...grow, "--steps", "3", "--resume"]),
  );

  const png = tmp("s3.png");
  assertOk(
    await sample(["--checkpoint", s3, "--prompt", "7", "--num", "2", "--steps", "2", "--out", png]),
  );
  const g = decodePng(readFileSync(png));
  assert.deepEqual([g.width, g.height], [2 * 32 + 3 * 2, 32 + 2 * 2]);
  assert.ok(existsSync(tmp("s3.txt")));

  // on Haar bands: twice the side at stage 2's tokens, trained, resumed and sampled as images
  const haar = tmp("s3-haar");
  const bands = [
    ...["--set", "model.image_size=32", "--set", "model.wavelet=haar"],
    ...["--set", "diffusion.detail_prediction=sample"],
  ];
  const h = await train(["--stage", "3", "--out", haar, "--init-from", s2, ...common, ...bands]);
  assertOk(h);
  assert.match(h.stderr, /Haar bands: .* the low band starts as the 16×16 model/);
  assertOk(
    await train(["--stage", "3", "--out", haar, ...common, ...bands, "--steps", "3", "--resume"]),
  );
  const hpng = tmp("haar.png");
  assertOk(
    await sample([
      "--checkpoint",
      haar,
      "--prompt",
      "7",
      "--num",
      "2",
      "--steps",
      "2",
      "--out",
      hpng,
    ]),
  );
  const hg = decodePng(readFileSync(hpng));
  assert.deepEqual([hg.width, hg.height], [2 * 32 + 3 * 2, 32 + 2 * 2]);
});

/** A checkpoint file, read, as the trainer's sources hand it over. */
const named = (path: string) => ({ ck: readCheckpoint(path), name: path });

Deno.test("train.init_ema: the next stage starts from the EMA weights, and says so", async () => {
  const trained = PixArt.init(TINY_TEXT_MODEL, 1), ema = PixArt.init(TINY_TEXT_MODEL, 2);
  const withEma = tmp("with-ema.safetensors"), without = tmp("without-ema.safetensors");
  await saveCheckpoint(withEma, trained, { step: 1, ema: ema.params });
  await saveCheckpoint(without, trained, { step: 1 });
  const next = { ...TINY_TEXT_MODEL, image_size: 2 * TINY_TEXT_MODEL.image_size };
  try {
    for (const [useEma, want] of [[false, trained], [true, ema]] as const) {
      const m = PixArt.init({ ...next, pe_interpolation: 2 }, 3);
      const log: string[] = [];
      initFromEarlierStage(m, named(withEma), 3, (l) => log.push(l), [], useEma);
      assert.match(log[0], useEma ? /\(EMA weights\)/ : /\(trained weights\)/);
      for (const name of m.params.names()) {
        assert.deepEqual(await m.params.get(name).read(), await want.params.get(name).read(), name);
      }
      m.dispose();
    }
    const m = PixArt.init({ ...next, pe_interpolation: 2 }, 3);
    assert.throws(
      () => initFromEarlierStage(m, named(without), 3, () => {}, [], true),
      /^Error: '.*without-ema\.safetensors' has no EMA weights to start from: set train\.init_ema to false/,
    );
    m.dispose();
  } finally {
    trained.dispose();
    ema.dispose();
  }
});

for (const wavelet of ["none", "haar"] as const) {
  Deno.test(`stage 3 with a patch twice as large starts as the stage-2 model on block means (wavelet ${wavelet})`, async () => {
    // stage 2: 8×8 RGB at patch 2 (a 4×4 grid; a Haar model: 16×16 as 12 bands of 8×8); stage 3:
    // 16×16 at patch 4 (32×32 as bands of 16×16), the same grid
    const haar = wavelet === "haar";
    const small = { ...TINY_TEXT_MODEL, in_channels: 3, wavelet, image_size: haar ? 16 : 8 };
    const big = { ...small, image_size: 2 * small.image_size, patch_size: 4 };
    const C = haar ? 12 : 3;
    const trained = PixArt.init(small, 5);
    const { rand } = await import("./helpers.ts");
    const { noGrad, tensor } = await import("../kernels/mod.ts");
    // a fresh output layer is zero: give it and the caption path something to carry
    for (const name of trained.params.names()) {
      const t = trained.params.get(name);
      trained.params.set(name, tensor(rand(t.size, name.length, 0.3), t.shape));
    }
    const path = tmp(`grow-${wavelet}.safetensors`);
    await saveCheckpoint(path, trained, { step: 1 });
    const grown = PixArt.init(big, 9);
    const lines: string[] = [];
    initFromEarlierStage(grown, named(path), 3, (l) => lines.push(l));
    assert.match(lines.join("\n"), /patch 2 → 4: the patch embedding averages each block/);
    const B = 2, x8 = rand(B * C * 64, 3);
    // the 16×16 tensor whose 2×2 blocks repeat the 8×8 one's values
    const up = (v: Float32Array, S: number) =>
      Float32Array.from({ length: B * C * 4 * S * S }, (_, k) => {
        const x = k % (2 * S),
          y = Math.floor(k / (2 * S)) % (2 * S),
          bc = Math.floor(k / (4 * S * S));
        return v[(bc * S + (y >> 1)) * S + (x >> 1)];
      });
    const cond = (m: PixArt) => ({
      kind: "text" as const,
      ...m.tokenize(["seven", "two"]),
      drop: new Uint8Array(B),
    });
    const [a, b] = noGrad(() => [
      trained.forward(tensor(x8, [B, C, 8, 8]), [100, 700], cond(trained)),
      grown.forward(tensor(up(x8, 8), [B, C, 16, 16]), [100, 700], cond(grown)),
    ]);
    const want = up(await a.read(), 8), got = await b.read();
    for (let i = 0; i < got.length; i++) {
      assert.ok(
        Math.abs(got[i] - want[i]) < 1e-4 * (1 + Math.abs(want[i])),
        `value ${i}: ${got[i]} vs ${want[i]}`,
      );
    }
    trained.dispose();
    grown.dispose();
    if (haar) return;
    // a patch that is not a whole multiple is refused
    const odd = PixArt.init({ ...small, image_size: 24, patch_size: 3 }, 1);
    assert.throws(
      () => initFromEarlierStage(odd, named(path), 3, () => {}),
      /not a multiple of the stage-2 model's 2/,
    );
    odd.dispose();
  });
}
