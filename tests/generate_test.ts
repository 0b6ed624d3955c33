// generate(): several batches sample without recording anything and with one batch's memory.

import { noGrad, pool, tapeLength } from "../kernels/mod.ts";
import { DEFAULT_MODEL, type ModelConfig } from "../model/config.ts";
import { PixArt } from "../model/pixart.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { generate } from "../diffusion/generate.ts";
import { ready } from "./helpers.ts";

await ready;

const TINY: ModelConfig = {
  ...DEFAULT_MODEL,
  image_size: 8,
  patch_size: 2,
  hidden_size: 32,
  depth: 2,
  num_heads: 2,
  stage: 2,
  text_len: 8,
  text_width: 16,
  text_depth: 1,
  text_heads: 2,
};

Deno.test("generate over several batches records nothing and peaks at one batch's memory", async () => {
  // freshly initialised weights require gradients: generate itself must switch recording off
  const model = PixArt.init(TINY, 3);
  if (!model.params.requiresGrad) throw new Error("fresh parameters should require gradients");
  const schedule = linearSchedule(1000);
  const o = { sampler: "dpm-solver" as const, steps: 3, guidance: 2, seed: 1, batch: 4 };
  const peakOf = async (n: number) => {
    pool.resetPeak();
    const before = pool.stats.inUseBytes;
    const out = await generate(model, schedule, Array(n).fill("seven"), [], o);
    if (out.length !== n * TINY.image_size ** 2) throw new Error(`${out.length} values`);
    if (tapeLength() !== 0) throw new Error(`${tapeLength()} ops left on the tape`);
    if (pool.stats.inUseBytes !== before) {
      throw new Error(`${pool.stats.inUseBytes - before} bytes still in use after generate`);
    }
    return pool.stats.peakInUseBytes - before;
  };
  const one = await peakOf(4);
  const three = await peakOf(12);
  if (three !== one) throw new Error(`peak of 3 batches ${three} B, of one batch ${one} B`);
  model.dispose();
});

Deno.test("noGrad refuses an async function", async () => {
  let msg = "";
  try {
    await noGrad(async () => {});
  } catch (e) {
    msg = (e as Error).message;
  }
  if (!/returned a promise/.test(msg)) throw new Error(`no clear error: '${msg}'`);
});
