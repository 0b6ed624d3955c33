// One training step's batch and optimiser, as the trainer and the benchmark of its step both build
// them (train/batch.ts drawStep, train/optimizer.ts optimizerFor): what a step draws depends on
// the run seed and the step alone; drop-path multipliers are 0 or 1/(1 − p) at rate p and are
// drawn after everything else; dropped conditions become the null class or caption; the
// optimiser is AdamW with the config's settings on lrAt's learning rate.

import assert from "node:assert/strict";
import { parseConfig } from "../io/config.ts";
import { tensor } from "../kernels/mod.ts";
import { captionFor } from "../io/captions.ts";
import type { ModelConfig } from "../model/config.ts";
import { PixArt } from "../model/pixart.ts";
import { configSchedule } from "../diffusion/schedule.ts";
import { drawStep, type StepImages } from "../train/batch.ts";
import { lrAt } from "../train/lr_schedule.ts";
import { optimizerFor } from "../train/optimizer.ts";
import { rand, ready, TINY_TEXT_MODEL } from "./helpers.ts";

await ready;

const B = 64;

function imagesOf(mc: ModelConfig): StepImages {
  const labels = Int32Array.from({ length: B }, (_, b) => b % mc.num_classes);
  return {
    images: rand(B * mc.in_channels * mc.image_size ** 2, 5),
    labels,
    caption: (b, rng) => captionFor(labels[b], rng),
  };
}

function configOf(yaml: string) {
  const cfg = parseConfig(yaml);
  return { cfg, schedule: configSchedule(cfg.diffusion) };
}

Deno.test("drawStep: what a step draws depends on the run seed and the step alone", () => {
  const mc = TINY_TEXT_MODEL;
  const model = PixArt.init(mc, 1);
  try {
    const { cfg, schedule } = configOf("model: {drop_path: 0.2}\ntrain: {seed: 3}");
    const x = imagesOf(mc);
    const a = drawStep(cfg, mc, model, schedule, 7, x);
    assert.deepEqual(drawStep(cfg, mc, model, schedule, 7, x), a);
    assert.equal(a.images, x.images);
    assert.ok(a.t.every((t) => Number.isInteger(t) && t >= 0 && t < schedule.T));
    const next = drawStep(cfg, mc, model, schedule, 8, x);
    assert.notDeepEqual(next.t, a.t);
    assert.notEqual(next.noiseSeed, a.noiseSeed);
    const { cfg: other } = configOf("model: {drop_path: 0.2}\ntrain: {seed: 4}");
    assert.notDeepEqual(drawStep(other, mc, model, schedule, 7, x).t, a.t);
  } finally {
    model.dispose();
  }
});

Deno.test("drawStep: drop-path keeps an image's branch at rate 1 − p, scaled by 1/(1 − p), drawn last", () => {
  const mc = TINY_TEXT_MODEL;
  const model = PixArt.init(mc, 1);
  try {
    const x = imagesOf(mc);
    const { cfg: off, schedule } = configOf("model: {drop_path: 0}");
    const { cfg: on } = configOf("model: {drop_path: 0.25}");
    assert.equal(drawStep(off, mc, model, schedule, 2, x).dropKeep, null);
    let kept = 0, n = 0;
    for (let step = 0; step < 20; step++) {
      const a = drawStep(off, mc, model, schedule, step, x);
      const b = drawStep(on, mc, model, schedule, step, x);
      // turning drop-path on (a phase may) leaves every other draw of the step as it was
      assert.deepEqual({ ...b, dropKeep: null }, a);
      assert.equal(b.dropKeep!.length, mc.depth * 2); // per block, self-attention and MLP
      for (const keep of b.dropKeep!) {
        assert.equal(keep.length, B);
        for (const v of keep) {
          assert.ok(v === 0 || v === Math.fround(1 / 0.75), `multiplier ${v}`);
          kept += v > 0 ? 1 : 0;
          n++;
        }
      }
    }
    // 5,120 draws: the kept share is 0.75 ± 0.006 (one standard deviation)
    assert.ok(Math.abs(kept / n - 0.75) < 0.03, `kept ${kept} of ${n}`);
  } finally {
    model.dispose();
  }
});

Deno.test("drawStep: a dropped condition is the null class (stage 1) or flagged for the null caption", () => {
  for (const stage of [1, 2] as const) {
    const mc: ModelConfig = { ...TINY_TEXT_MODEL, stage, num_classes: 10 };
    const model = PixArt.init(mc, 1);
    try {
      const { cfg, schedule } = configOf("diffusion: {p_uncond: 0.5}");
      const x = imagesOf(mc);
      const { cond } = drawStep(cfg, mc, model, schedule, 1, x);
      if (cond.kind === "class") {
        const dropped = cond.labels.filter((l) => l === mc.num_classes).length;
        assert.ok(dropped > 16 && dropped < 48, `${dropped} of ${B} dropped`);
        cond.labels.forEach((l, b) => assert.ok(l === mc.num_classes || l === x.labels[b]));
      } else {
        const dropped = cond.drop.filter((d) => d).length;
        assert.ok(dropped > 16 && dropped < 48, `${dropped} of ${B} dropped`);
        assert.equal(cond.tokens.length, B * mc.text_len);
      }
      const { cfg: never } = configOf("diffusion: {p_uncond: 0}");
      const kept = drawStep(never, mc, model, schedule, 1, x).cond;
      if (kept.kind === "class") assert.deepEqual(kept.labels, x.labels);
      else assert.ok(kept.drop.every((d) => !d));
    } finally {
      model.dispose();
    }
  }
});

Deno.test("optimizerFor: AdamW with the config's settings on the learning rate of every step", () => {
  const cfg = parseConfig(`
train: {steps: 100, lr: 2.0e-3, warmup_steps: 10, lr_decay: cosine, decay_start: 40, min_lr: 1.0e-5,
        beta1: 0.8, beta2: 0.95, weight_decay: 0.03, clip_norm: 0.5}
phases:
  - from: 60
    train.lr: 5.0e-4
    train.warmup_steps: 0
    train.decay_start: 80
    train.weight_decay: 0.1
    train.clip_norm: 2.0
`);
  const p = tensor([1, 2], [2]).keep();
  const opt = optimizerFor([p], cfg);
  try {
    assert.deepEqual(opt.betas, [0.8, 0.95]);
    assert.equal(opt.weightDecay, 0.03);
    assert.equal(opt.decoupled, true);
    assert.equal(opt.clipNorm, 0.5);
    for (let t = 1; t <= 100; t++) assert.equal(opt.lrAt(t), lrAt(cfg, t), `step ${t}`);
    // the phase's new cycle is in the curve: 5e-4 right after step 60
    assert.ok(Math.abs(opt.lrAt(61) - 5e-4) < 1e-12, `${opt.lrAt(61)}`);
    // weight decay and clipping change with the phase: step 61 is the first taken after step 60
    assert.deepEqual(opt.settingsAt(60), { weightDecay: 0.03, clipNorm: 0.5 });
    assert.deepEqual(opt.settingsAt(61), { weightDecay: 0.1, clipNorm: 2.0 });
  } finally {
    opt.dispose();
    p.dispose();
  }
});

Deno.test("optimizerFor: a phase's weight decay is the one its steps apply", async () => {
  const cfg = parseConfig(`
train: {steps: 8, lr: 0.1, warmup_steps: 0, lr_decay: constant, weight_decay: 0.5}
phases:
  - from: 4
    train.weight_decay: 2.0
`);
  const p = tensor([1, -2], [2]).keep();
  const opt = optimizerFor([p], cfg);
  try {
    // a zero gradient moves nothing through Adam's moments: each step only decays, p·(1 − lr·wd)
    let f = 1;
    for (let t = 1; t <= 8; t++) {
      p.grad = tensor([0, 0], [2]).keep();
      opt.step();
      f *= 1 - 0.1 * (t <= 4 ? 0.5 : 2.0);
    }
    const got = await p.read();
    assert.ok(Math.abs(got[0] - f) < 1e-6 && Math.abs(got[1] + 2 * f) < 1e-6, `${got} vs ${f}`);
  } finally {
    opt.dispose();
    p.dispose();
  }
});
