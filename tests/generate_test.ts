// generate(): several batches sample without recording anything and with one batch's memory; the
// per-step callback sees every sampler step of every batch, with an x that can be read there, and
// the last step's x is what generate returns.

import assert from "node:assert/strict";
import { noGrad, pool, tapeLength } from "../kernels/mod.ts";
import { PixArt } from "../model/pixart.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { generate, labelOf, MAX_GUIDANCE } from "../diffusion/generate.ts";
import { loadPipeline } from "../diffusion/load_pipeline.ts";
import type { SamplerName } from "../diffusion/samplers.ts";
import { ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

const TINY = TINY_TEXT_MODEL;

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

Deno.test("generate: onStep gets each step of each batch; its x is readable and ends as the output", async () => {
  const model = PixArt.init(TINY, 1);
  const schedule = linearSchedule(1000);
  const prompts = ["seven", "3", "two"];
  const per = TINY.image_size * TINY.image_size;
  for (const sampler of ["ddim", "dpm-solver", "dpm-solver-3m", "unipc"] as SamplerName[]) {
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

Deno.test("generate refuses what it cannot draw: no prompts, a guidance that is not a usable number", async () => {
  const model = PixArt.init(TINY, 2);
  const schedule = linearSchedule(1000);
  const o = { sampler: "ddim" as const, steps: 2, guidance: 2, seed: 0 };
  const refused = async (prompts: string[], guidance: number, re: RegExp) => {
    await assert.rejects(
      async () => await generate(model, schedule, prompts, [], { ...o, guidance }),
      re,
    );
  };
  await refused([], 2, /^Error: no prompts: pass one or more$/);
  for (const w of [NaN, Infinity, -1, 1e30, MAX_GUIDANCE + 1]) {
    await refused(
      ["seven"],
      w,
      new RegExp(
        `^Error: guidance must be a number from 0 to ${MAX_GUIDANCE} \\(1 = none\\), got ${
          RegExp.escape(String(w))
        }$`,
      ),
    );
  }
  // the bounds themselves draw
  for (const w of [0, MAX_GUIDANCE]) {
    const out = await generate(model, schedule, ["seven"], [], { ...o, guidance: w });
    assert.ok(out.every(Number.isFinite), `guidance ${w}`);
  }
  model.dispose();
});

Deno.test("a pipeline: one generate at a time, none after dispose", async () => {
  const pipe = await loadPipeline("digits");
  const o = { steps: 2 };
  const first = pipe.generate(["seven"], o);
  await assert.rejects(
    async () => await pipe.generate(["3"], o),
    /^Error: one generate at a time: await the running one before starting another$/,
  );
  assert.equal((await first).length, 32 * 32);
  // once it has finished, the next one runs
  assert.equal((await pipe.generate(["3"], o)).length, 32 * 32);
  await assert.rejects(async () => await pipe.generate([], o), /^Error: no prompts/);
  pipe.dispose();
  await assert.rejects(
    async () => await pipe.generate(["seven"], o),
    /^Error: the pipeline was disposed: load it again \(loadPipeline\) to draw$/,
  );
  pipe.dispose(); // twice is harmless
});

Deno.test("a class prompt reads a class's own name before the digit shortcut", () => {
  const numbered = Array.from({ length: 10 }, (_, k) => String(k + 1)); // classes "1" … "10"
  assert.equal(labelOf("1", numbered), 0);
  assert.equal(labelOf("10", numbered), 9);
  assert.equal(labelOf("0", numbered), 0); // no class "0": the digit shortcut
  const words = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"];
  assert.equal(labelOf("7", words), 7);
  assert.equal(labelOf(" Seven ", words), 7);
  assert.throws(
    () => labelOf("11", words),
    /cannot draw '11': use one of zero, .* or a digit 0-9$/,
  );
});
