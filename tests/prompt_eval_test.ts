// The evaluation's bookkeeping: prompts per form, per-class accuracy and confidence, the FID
// reference and floor, and resizing to the classifier's input — with a stand-in classifier whose
// answers are known, so every number can be checked.

import assert from "node:assert";
import { PixArt } from "../model/pixart.ts";
import { DEFAULT_MODEL, type ModelConfig } from "../model/config.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { FASHION_MNIST_CLASSES, MNIST_WORDS } from "../io/captions.ts";
import {
  CLASSIFIER_SIZE,
  evalPrompts,
  evaluatePrompts,
  type FeatureClassifier,
  realReference,
  toClassifierSize,
} from "../eval/prompt_eval.ts";
import { rand, ready } from "./helpers.ts";

await ready;

/** Says "class 3" with probability 0.7 for every image; features: mean, max and two pixels. */
class StandIn implements FeatureClassifier {
  seen: number[] = [];
  async predict(images: Float32Array, n: number) {
    const per = images.length / n;
    this.seen.push(per);
    const probs = new Float32Array(n * 10).fill(0.3 / 9);
    const features = new Float32Array(n * 4);
    for (let i = 0; i < n; i++) {
      probs[i * 10 + 3] = 0.7;
      const img = images.subarray(i * per, (i + 1) * per);
      let s = 0, m = -Infinity;
      for (const v of img) {
        s += v;
        m = Math.max(m, v);
      }
      features.set([s / per, m, img[0], img[per >> 1]], i * 4);
    }
    return await Promise.resolve({ probs, features, featureDim: 4 });
  }
}

Deno.test("samples are scored as a PNG shows them: clipped to [-1, 1], at the classifier's size", () => {
  const at32 = Float32Array.from({ length: 32 * 32 }, (_, i) => (i % 3) * 3 - 3); // -3, 0, 3
  const shown = toClassifierSize(at32, 1, 1, 32);
  assert.deepStrictEqual([...shown.slice(0, 3)], [-1, 0, 1]);
  assert.strictEqual(at32[0], -3, "the samples themselves are not changed");
  const at64 = new Float32Array(64 * 64).fill(5);
  assert.ok(toClassifierSize(at64, 1, 1, 64).every((v) => v === 1));
});

Deno.test("evalPrompts: digits by word and numeral, other sets by class name", () => {
  const d = evalPrompts(MNIST_WORDS);
  assert.equal(d.length, 20);
  assert.deepEqual(d[7], { prompt: "seven", label: 7, form: "word" });
  assert.deepEqual(d[17], { prompt: "7", label: 7, form: "numeral" });
  const f = evalPrompts(FASHION_MNIST_CLASSES);
  assert.equal(f.length, 10);
  assert(f.every((p, k) => p.form === "name" && p.label === k));
});

Deno.test("evaluatePrompts scores a known classifier exactly and resizes to its input", async () => {
  const mc: ModelConfig = {
    ...DEFAULT_MODEL,
    stage: 2,
    image_size: 16,
    patch_size: 4,
    hidden_size: 32,
    depth: 1,
    num_heads: 2,
    text_len: 8,
    text_width: 16,
    text_depth: 1,
    text_heads: 2,
  };
  const model = PixArt.init(mc, 1);
  const clf = new StandIn();
  const per = CLASSIFIER_SIZE * CLASSIFIER_SIZE;
  const set = {
    images: rand(60 * per, 1),
    labels: new Int32Array(60),
    n: 60,
    channels: 1,
    height: CLASSIFIER_SIZE,
    width: CLASSIFIER_SIZE,
  };
  const idx = (from: number) => Int32Array.from({ length: 30 }, (_, i) => from + i);
  const real = await realReference(clf, set, idx(0), idx(30), 40);
  assert.equal(real.n, 30, "the reference is capped by the real images available");
  assert(real.floor >= 0 && Number.isFinite(real.floor));
  // too few samples, or too few real images, each named for what is short
  await assert.rejects(
    () => realReference(clf, set, idx(0), idx(30), 1),
    /^Error: FID needs at least 2 samples, asked for 1: draw more samples or captions$/,
  );
  await assert.rejects(
    () => realReference(clf, set, [0], idx(30), 40),
    /^Error: FID needs at least 2 real images each side, have 1 held out and 30 to train on: use a larger data set$/,
  );
  const { result, images, prompts } = await evaluatePrompts(
    model,
    linearSchedule(1000),
    clf,
    real,
    MNIST_WORDS,
    { sampler: "ddim", steps: 2, guidance: 2, seed: 0, perPrompt: 2, batch: 16 },
  );
  model.dispose();
  assert.equal(prompts.length, 20);
  assert.equal(images.length, 40 * 16 * 16, "samples come back at the model's size");
  assert.deepEqual(clf.seen, [per, per, per], "the classifier always sees 32×32 images");
  assert.equal(result.samples, 40);
  assert(Math.abs(result.accuracy - 0.1) < 1e-9, `accuracy ${result.accuracy}`);
  assert(Math.abs(result.confidence - 0.7) < 1e-6);
  assert.equal(result.per_class[3].accuracy, 1);
  assert.equal(result.per_class[4].accuracy, 0);
  assert.equal(result.per_class[3].samples, 4);
  assert.deepEqual(result.per_form, { word: 0.1, numeral: 0.1 });
  assert.equal(result.fid_samples, 30);
  assert(result.fid > 0 && Number.isFinite(result.fid));
  assert.equal(result.fid_floor, real.floor);
});
