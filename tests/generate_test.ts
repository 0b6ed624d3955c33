// generate(): the per-step callback sees every sampler step of every batch, with an x that can be
// read there, and the last step's x is what generate returns.

import assert from "node:assert/strict";
import { pool } from "../kernels/mod.ts";
import { PixArt } from "../model/pixart.ts";
import { DEFAULT_MODEL, type ModelConfig } from "../model/config.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { generate } from "../diffusion/generate.ts";
import type { SamplerName } from "../diffusion/samplers.ts";
import { ready } from "./helpers.ts";

await ready;

const TINY: ModelConfig = {
  ...DEFAULT_MODEL,
  stage: 2,
  image_size: 8,
  patch_size: 4,
  hidden_size: 32,
  depth: 1,
  num_heads: 2,
  text_len: 8,
  text_width: 16,
  text_depth: 1,
  text_heads: 2,
};

Deno.test("generate: onStep gets each step of each batch; its x is readable and ends as the output", async () => {
  const model = PixArt.init(TINY, 1);
  const schedule = linearSchedule(1000);
  const prompts = ["seven", "3", "two"];
  const per = TINY.image_size * TINY.image_size;
  for (const sampler of ["ddim", "dpm-solver"] as SamplerName[]) {
    const before = pool.stats.inUseBytes;
    const seen: { first: number; step: number; total: number; B: number }[] = [];
    const reads: Promise<{ first: number; step: number; x: Float32Array }>[] = [];
    const out = await generate(model, schedule, prompts, [], {
      sampler,
      steps: 3,
      guidance: 2.5,
      seed: 4,
      batch: 2,
      onStep: (s) => {
        seen.push({ first: s.first, step: s.step, total: s.total, B: s.x.shape[0] });
        reads.push(s.x.read().then((x) => ({ first: s.first, step: s.step, x })));
      },
    });
    assert.deepEqual(seen, [
      ...[1, 2, 3].map((step) => ({ first: 0, step, total: 3, B: 2 })),
      ...[1, 2, 3].map((step) => ({ first: 2, step, total: 3, B: 1 })),
    ], sampler);
    const read = await Promise.all(reads);
    for (const r of read.filter((r) => r.step === 3)) {
      assert.deepEqual(r.x, out.subarray(r.first * per, r.first * per + r.x.length), sampler);
    }
    // the steps differ (the images change as they denoise)
    assert.notDeepEqual(read[0].x, read[1].x);
    assert.equal(pool.stats.inUseBytes, before, `${sampler}: pool bytes in use after generate`);
  }
  model.dispose();
});
