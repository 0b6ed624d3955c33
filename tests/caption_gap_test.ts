// The caption gap (eval/caption_gap.ts): zero for a model that cannot see its caption, zero again
// when every image's "other" caption is its own, and its errors are the plain ε-MSE of the
// definition whatever the batching.

import assert from "node:assert/strict";
import { Generator, mseLoss, noGrad, tensor } from "../kernels/mod.ts";
import { PixArt } from "../model/pixart.ts";
import { tokenize } from "../model/tokenizer.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { qSample } from "../diffusion/ddpm.ts";
import { captionGap } from "../eval/caption_gap.ts";
import { rand, ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

const TINY = TINY_TEXT_MODEL;

Deno.test("caption gap: 0 without cross-attention, 0 for the same caption, else the ε-MSE", async () => {
  const model = PixArt.init(TINY, 3);
  const schedule = linearSchedule(1000);
  const n = 6, D = TINY.in_channels * TINY.image_size ** 2;
  const images = rand(n * D, 5);
  const captions = ["seven", "3", "two", "nine", "0", "five"];
  try {
    // a fresh model's output layer is zero: make it draw something
    model.params.set("final_layer.linear.weight", tensor(rand(4 * 32, 9, 0.5), [4, 32]));
    // its cross-attention output projection is still zero: the caption cannot matter
    const blind = await captionGap(model, schedule, images, captions, { batch: 4 });
    assert.equal(blind.own, blind.other);
    assert.equal(blind.own, blind.none);
    assert.equal(blind.gap, 0);

    for (let i = 0; i < TINY.depth; i++) {
      const name = `blocks.${i}.cross_attn.proj.weight`;
      model.params.set(name, tensor(rand(32 * 32, 10 + i, 0.5), [32, 32]));
    }
    const g = await captionGap(model, schedule, images, captions, { batch: 4, t: 300, seed: 2 });
    assert.notEqual(g.own, g.other);
    assert.notEqual(g.own, g.none);
    assert.ok(Math.abs(g.gap - (g.other - g.own) / g.other) < 1e-12);
    assert.deepEqual([g.t, g.n], [300, 6]);

    // the definition in one batch: noise from the same seed, x_t at t, MSE against the noise
    const { tokens, mask } = tokenize(captions, TINY.text_len);
    const own = noGrad(() => {
      const eps = new Generator(2).normal([n, 1, 8, 8]);
      const ts = new Array(n).fill(300);
      const xt = qSample(schedule, tensor(images, [n, 1, 8, 8]), ts, eps);
      const cond = { kind: "text" as const, tokens, mask, drop: new Uint8Array(n) };
      return mseLoss(model.forward(xt, ts, cond), eps);
    });
    const want = (await own.read())[0];
    own.dispose();
    assert.ok(Math.abs(g.own - want) < 1e-6 * want, `${g.own} vs ${want}`);

    // each image's other caption is its own: no gap, but the null caption still differs
    const same = await captionGap(model, schedule, images, Array(n).fill("seven"), { batch: 4 });
    assert.equal(same.own, same.other);
    assert.notEqual(same.own, same.none);
  } finally {
    model.dispose();
  }
});

Deno.test("caption gap: a stage-1 model or mismatched images are one-line errors", async () => {
  const s1 = PixArt.init({ ...TINY, stage: 1 }, 1);
  const s2 = PixArt.init(TINY, 1);
  const schedule = linearSchedule(1000);
  try {
    await assert.rejects(
      () => captionGap(s1, schedule, new Float32Array(128), ["a", "b"]),
      /no caption \(a stage-1 model\)/,
    );
    await assert.rejects(
      () => captionGap(s2, schedule, new Float32Array(100), ["a", "b"]),
      /100 values for 2 captions of \[1, 8, 8\]/,
    );
    // a timestep past the schedule's end; the default is the middle of a shorter schedule
    const images = rand(2 * 64, 3);
    await assert.rejects(
      () => captionGap(s2, schedule, images, ["a", "b"], { t: 1000 }),
      /t 1000 is not a timestep of a 1000-step schedule/,
    );
    const short = await captionGap(s2, linearSchedule(400), images, ["a", "b"]);
    assert.equal(short.t, 200);
    assert.ok(Number.isFinite(short.own) && Number.isFinite(short.gap));
  } finally {
    s1.dispose();
    s2.dispose();
  }
});
