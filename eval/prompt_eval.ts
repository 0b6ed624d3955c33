// Does the model draw what it is asked? Samples K images per class prompt, classifies them with
// the evaluation classifier and scores prompt accuracy, the classifier's confidence, and FID on
// its penultimate features against held-out real images — beside the real-vs-real FID at the
// same count, the floor that sampling noise alone gives at that sample size.

import { generate, type GenerateOptions } from "../diffusion/generate.ts";
import type { Schedule } from "../diffusion/schedule.ts";
import { gatherBatch, type ImageSet } from "../io/image_set.ts";
import { resizeBilinear } from "../io/resize_bilinear.ts";
import { MNIST_WORDS } from "../io/captions.ts";
import { mulberry32, shuffleInPlace } from "../kernels/host_random.ts";
import type { PixArt } from "../model/pixart.ts";
import { fid, frechetDistance, type Gaussian, gaussianOf } from "./fid.ts";

/** What the evaluation needs from a classifier (eval/classifier.ts provides it). */
export interface FeatureClassifier {
  predict(
    images: Float32Array,
    n: number,
    batch?: number,
  ): Promise<{ probs: Float32Array; features: Float32Array; featureDim: number }>;
}

/** The classifier's input size; samples and real images of other sizes are resized to it. */
export const CLASSIFIER_SIZE = 32;

/**
 * [n, C, S, S] samples as the classifier reads them: as a PNG shows them, clipped to [−1, 1] (the
 * classifier has never seen values beyond, and an untrained model's far-out values would put FID
 * in the millions), at its size (bilinear).
 */
export function toClassifierSize(images: Float32Array, n: number, C: number, S: number) {
  const shown = images.map((v) => (v < -1 ? -1 : v > 1 ? 1 : v));
  return S === CLASSIFIER_SIZE
    ? shown
    : resizeBilinear(shown, n, C, S, S, CLASSIFIER_SIZE, CLASSIFIER_SIZE);
}

/** One prompt of the evaluation: its text, the class it asks for, and its form. */
export interface EvalPrompt {
  prompt: string;
  label: number;
  /** "word" ("seven"), "numeral" ("7") or "name" (a class name of another data set) */
  form: "word" | "numeral" | "name";
}

/** Every class once per form: digits as words and numerals, other sets by class name. */
export function evalPrompts(classNames: readonly string[]): EvalPrompt[] {
  const digits = classNames.join() === MNIST_WORDS.join();
  const out: EvalPrompt[] = [];
  classNames.forEach((name, label) =>
    out.push({ prompt: name, label, form: digits ? "word" : "name" })
  );
  if (digits) {
    for (let label = 0; label < 10; label++) {
      out.push({ prompt: String(label), label, form: "numeral" });
    }
  }
  return out;
}

/** Real images' features: the reference set FID compares against, and the floor beside it. */
export interface RealReference {
  n: number;
  reference: Gaussian;
  /** FID of n other real images against the reference (the floor at this count) */
  floor: number;
}

/**
 * The reference is n held-out images (never trained on); the floor compares n training images
 * with them, so model FID and floor share the count and the reference set. `set` holds the
 * images at the classifier's size; heldOut and train index into it.
 */
export async function realReference(
  classifier: FeatureClassifier,
  set: ImageSet,
  heldOut: ArrayLike<number>,
  train: ArrayLike<number>,
  n: number,
  seed = 0,
): Promise<RealReference> {
  if (n < 2) {
    throw new Error(`FID needs at least 2 samples, asked for ${n}: draw more samples or captions`);
  }
  const count = Math.min(n, heldOut.length, train.length);
  if (count < 2) {
    throw new Error(
      `FID needs at least 2 real images each side, have ${heldOut.length} held out and ` +
        `${train.length} to train on: use a larger data set`,
    );
  }
  // a seeded random subset of `count` indices, copied once
  const pick = (idx: ArrayLike<number>, s: number) => {
    const order = shuffleInPlace(Int32Array.from(idx), mulberry32(s)).subarray(0, count);
    return gatherBatch(set, order).images;
  };
  const ref = await classifier.predict(pick(heldOut, seed + 1), count);
  const other = await classifier.predict(pick(train, seed + 2), count);
  const d = ref.featureDim;
  return {
    n: count,
    reference: gaussianOf(ref.features, count, d),
    floor: fid(other.features, count, ref.features, count, d),
  };
}

/**
 * FID of n samples' features against the reference, over at most as many samples as the
 * reference holds (the floor's count), spread evenly over the samples so every prompt counts.
 */
export function sampleFid(
  features: Float32Array,
  n: number,
  dim: number,
  real: RealReference,
): { fid: number; count: number } {
  const m = Math.min(n, real.n);
  const pick = new Float32Array(m * dim);
  for (let j = 0; j < m; j++) {
    const i = Math.floor((j * n) / m);
    pick.set(features.subarray(i * dim, (i + 1) * dim), j * dim);
  }
  return { fid: frechetDistance(gaussianOf(pick, m, dim), real.reference), count: m };
}

export interface ClassScore {
  name: string;
  /** share of this class's samples the classifier assigns to it */
  accuracy: number;
  /** mean probability the classifier gives its own top class */
  confidence: number;
  samples: number;
}

/** How an evaluation's samples were drawn, as its JSON records them. */
export interface SamplingSettings {
  sampler: string;
  /** the sampler's steps (ancestral: all T) */
  steps: number;
  guidance: number;
  /** [lo, hi] timesteps the guidance applied in; absent: all */
  guidance_interval?: [number, number];
  seed: number;
}

/** The settings record of generate options `o` on a schedule of `T` steps. */
export function samplingSettings(
  o: Pick<GenerateOptions, "sampler" | "steps" | "guidance" | "guidanceInterval" | "seed">,
  T: number,
): SamplingSettings {
  return {
    sampler: o.sampler,
    steps: o.sampler === "ancestral" ? T : o.steps,
    guidance: o.guidance,
    ...(o.guidanceInterval
      ? { guidance_interval: [...o.guidanceInterval] as [number, number] }
      : {}),
    seed: o.seed,
  };
}

/**
 * The generate options an evaluation samples with: its own sampling settings, in batches of 64
 * unless told (whole-set batches would not fit a CPU adapter's memory).
 */
export function evalSampling(o: GenerateOptions): GenerateOptions {
  const { sampler, steps, guidance, guidanceInterval, seed, onProgress } = o;
  return { sampler, steps, guidance, guidanceInterval, seed, batch: o.batch ?? 64, onProgress };
}

export interface PromptEvalResult extends SamplingSettings {
  samples: number;
  accuracy: number;
  confidence: number;
  fid: number;
  /** real-vs-real FID at the same count (sample count capped by the real images available) */
  fid_floor: number;
  fid_samples: number;
  per_form: Record<string, number>;
  per_class: ClassScore[];
}

export interface PromptEvalOptions extends Omit<GenerateOptions, "onProgress"> {
  /** samples per prompt */
  perPrompt: number;
  onProgress?: (done: number, total: number) => void;
}

/** Samples, classifies and scores; returns the scores and the samples (prompt-major order). */
export async function evaluatePrompts(
  model: PixArt,
  schedule: Schedule,
  classifier: FeatureClassifier,
  real: RealReference,
  classNames: readonly string[],
  o: PromptEvalOptions,
): Promise<{ result: PromptEvalResult; images: Float32Array; prompts: EvalPrompt[] }> {
  const list = evalPrompts(classNames);
  const prompts: string[] = [];
  const labels: number[] = [];
  const forms: string[] = [];
  for (const p of list) {
    for (let k = 0; k < o.perPrompt; k++) {
      prompts.push(p.prompt);
      labels.push(p.label);
      forms.push(p.form);
    }
  }
  const images = await generate(model, schedule, prompts, classNames, evalSampling(o));
  const n = prompts.length;
  const c = model.config;
  const { probs, features, featureDim } = await classifier.predict(
    toClassifierSize(images, n, c.in_channels, c.image_size),
    n,
  );
  const K = classNames.length;
  const hit = new Float64Array(K), conf = new Float64Array(K), count = new Float64Array(K);
  const formHit = new Map<string, [number, number]>();
  let hits = 0, confSum = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let k = 1; k < K; k++) if (probs[i * K + k] > probs[i * K + best]) best = k;
    const ok = best === labels[i] ? 1 : 0;
    hits += ok;
    confSum += probs[i * K + best];
    hit[labels[i]] += ok;
    conf[labels[i]] += probs[i * K + best];
    count[labels[i]]++;
    const f = formHit.get(forms[i]) ?? [0, 0];
    formHit.set(forms[i], [f[0] + ok, f[1] + 1]);
  }
  const fidOf = sampleFid(features, n, featureDim, real);
  const result: PromptEvalResult = {
    ...samplingSettings(o, schedule.T),
    samples: n,
    accuracy: hits / n,
    confidence: confSum / n,
    fid: fidOf.fid,
    fid_floor: real.floor,
    fid_samples: fidOf.count,
    per_form: Object.fromEntries([...formHit].map(([f, [h, c]]) => [f, h / c])),
    per_class: classNames.map((name, k) => ({
      name,
      accuracy: count[k] ? hit[k] / count[k] : 0,
      confidence: count[k] ? conf[k] / count[k] : 0,
      samples: count[k],
    })),
  };
  return { result, images, prompts: list };
}
