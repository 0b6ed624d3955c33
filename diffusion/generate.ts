// Prompts in, images out: conditions from prompts, start noise from a seed, one of the samplers;
// or, given a start image, the image edited (diffusion/edit.ts).

import {
  empty,
  Generator,
  noGrad,
  type Tensor,
  tidy,
  warmUp,
  type WarmUpProgress,
} from "../kernels/mod.ts";
import type { Condition, PixArt } from "../model/pixart.ts";
import { type ModelConfig, modelSpace } from "../model/config.ts";
import { haarMask, toModelSpace, toPixels } from "../model/wavelet.ts";
import {
  type Constrain,
  FAST_SAMPLERS,
  sampleAncestral,
  type SamplerName,
  SAMPLERS,
  type StepInfo,
} from "./samplers.ts";
import { type Schedule, timePoints } from "./schedule.ts";
import { epsFromOutput, predictsEps } from "./ddpm.ts";
import { type EditOptions, type EditPlan, editSamples, planEdit } from "./edit.ts";
import { DEFAULT_CONFIG, MAX_GUIDANCE } from "../io/config_schema.ts";

export { MAX_GUIDANCE };

/** Guidance when none is given (sample, eval, the web page): the config's default, the README's
 * recommended setting. */
export const DEFAULT_GUIDANCE: number = DEFAULT_CONFIG.sample.guidance;
/** The sampler when none is given. */
export const DEFAULT_SAMPLER: SamplerName = DEFAULT_CONFIG.sample.sampler;
/** Steps of the fast samplers (all but ancestral) when none are given. */
export const DEFAULT_STEPS: number = DEFAULT_CONFIG.sample.steps;

export { DEFAULT_STRENGTH } from "./edit.ts";

/** The most samples one request draws (16,384 of 64×64 RGB: a 0.8-gigapixel grid); the command
 * line and the page refuse more. */
export const MAX_SAMPLES = 16_384;

/** How to sample, and (EditOptions) an image to start from and a region of it to keep. */
export interface GenerateOptions extends EditOptions {
  sampler: SamplerName;
  steps: number;
  guidance: number;
  /** guide only for timesteps lo ≤ t ≤ hi, the conditional model alone elsewhere (PixArt.guidedEps) */
  guidanceInterval?: readonly [number, number] | null;
  /**
   * A negative prompt for every sample: guidance steers away from it, its prediction taking the
   * null caption's place (PixArt.guidedEps). Blank or absent: the learned null caption, as the
   * PixArt-α repository samples.
   */
  negative?: string | null;
  seed: number;
  /** samples per forward batch (memory bound); default all */
  batch?: number;
  onProgress?: (done: number, total: number) => void;
  /**
   * Called after every sampler step with the batch's x_t, in the model's own space (a model of
   * Haar bands: its bands, model/wavelet.ts `toPixels` makes them an image). It is freed a step
   * later: start a read there (`x.read()` records its copy at once), do not keep it.
   */
  onStep?: (s: GenerateStep) => void;
  /**
   * Progress of the warm-up before the first step: the kernels sampling needs are compiled first
   * (a fresh machine's CPU adapter spends seconds on it) and, where tuning is on, their variants
   * timed (kernels/warmup.ts).
   */
  onWarmUp?: (p: WarmUpProgress) => void;
}

/** A sampler step of one batch: its x holds samples first … first + B − 1 of the prompts. */
export interface GenerateStep extends StepInfo {
  first: number;
}

/** Class labels a stage-1 model understands: "7", "seven" (and class names, when given). */
export function labelOf(prompt: string, classNames: readonly string[]): number {
  const p = prompt.trim().toLowerCase().replace(/\s+/g, " ");
  // a class's own name first: classes named "1" … "10" put "1" at index 0, not 1
  const k = classNames.findIndex((c) => c.toLowerCase() === p);
  if (k >= 0) return k;
  if (/^\d$/.test(p) && classNames.length === 10) return Number(p);
  throw new Error(
    `a class-conditional (stage-1) model cannot draw '${prompt}': use one of ${
      classNames.join(", ")
    }${classNames.length === 10 ? " or a digit 0-9" : ""}`,
  );
}

export function conditionFor(
  model: PixArt,
  prompts: string[],
  classNames: readonly string[],
): Condition {
  if (model.config.stage === 1) {
    return { kind: "class", labels: Int32Array.from(prompts, (p) => labelOf(p, classNames)) };
  }
  const { tokens, mask } = model.tokenize(prompts);
  return { kind: "text", tokens, mask, drop: new Uint8Array(prompts.length) };
}

/** The negative prompt's condition for n samples; its errors say it is the negative prompt. */
function negativeCondition(
  model: PixArt,
  negative: string,
  n: number,
  classNames: readonly string[],
): Condition {
  try {
    conditionFor(model, [negative], classNames); // its errors, said of one prompt
  } catch (e) {
    throw new Error(`negative prompt: ${(e as Error).message}`);
  }
  return conditionFor(model, Array(n).fill(negative), classNames);
}

function sliceCondition(c: Condition, from: number, to: number, L: number): Condition {
  if (c.kind === "class") return { kind: "class", labels: c.labels.slice(from, to) };
  return {
    kind: "text",
    tokens: c.tokens.slice(from * L, to * L),
    mask: c.mask.slice(from * L, to * L),
    drop: c.drop.slice(from, to),
  };
}

/** Samples one image per prompt; returns [n, C, H, W] values (about [-1, 1]). */
export function generate(
  model: PixArt,
  schedule: Schedule,
  prompts: string[],
  classNames: readonly string[],
  o: GenerateOptions,
): Promise<Float32Array> {
  if (!SAMPLERS.includes(o.sampler)) {
    throw new Error(`unknown sampler '${o.sampler}': use one of ${SAMPLERS.join(", ")}`);
  }
  if (prompts.length === 0) throw new Error("no prompts: pass one or more");
  checkGuidance(o.guidance);
  // a second run on the same model would share its packed weights and cached caption path
  if (generating.has(model)) {
    throw new Error("one generate at a time: await the running one before starting another");
  }
  const cond = conditionFor(model, prompts, classNames);
  const n = prompts.length;
  const neg = o.negative?.trim() ? negativeCondition(model, o.negative, n, classNames) : null;
  const c = model.config;
  // the model's own space (model/wavelet.ts) holds as many numbers a sample as the image
  const per = c.in_channels * c.image_size * c.image_size, side = modelSpace(c).size;
  const out = new Float32Array(n * per);
  const batch = Math.max(1, Math.min(o.batch ?? n, n));
  const asked = planEdit(o, n, c.in_channels, c.image_size, o.sampler, schedule.T, o.steps);
  const edit = asked && inModelSpace(c, asked);
  const gen = new Generator(o.seed);
  const perBatch = edit?.steps ?? (o.sampler === "ancestral" ? schedule.T : o.steps);
  const totalSteps = perBatch * Math.ceil(n / batch);
  let done = 0;
  generating.add(model);
  return (async () => {
    const slice = (from: number, to: number) =>
      [
        sliceCondition(cond, from, to, c.text_len),
        neg && sliceCondition(neg, from, to, c.text_len),
      ] as const;
    await warmUpSampling(model, schedule, ...slice(0, batch), batch, o);
    for (let from = 0; from < n; from += batch) {
      const to = Math.min(n, from + batch);
      const [bc, bn] = slice(from, to);
      // only the synchronous sampling runs without gradients; awaiting inside noGrad would
      // switch recording back on for the next batch (see kernels/autograd.ts)
      // steps counted along the whole path: an edit runs the sampler in pieces
      let step = 0;
      const tick = (st: StepInfo) => {
        o.onProgress?.(++done, totalSteps);
        o.onStep?.({ ...st, step: ++step, total: perBatch, first: from });
      };
      const be = edit && batchEdit(edit, from, to, per, side * side);
      const x = noGrad(() => sampleBatch(model, schedule, bc, bn, to - from, gen, o, be, tick));
      try {
        out.set(await x.read(), from * per);
      } finally {
        x.dispose();
      }
    }
    if (c.wavelet === "none") return out;
    // back from the bands, the start image where an edit keeps it, to the bit as a pixel
    // model's: all of it when no step ran (strength 0), its known pixels under a mask
    const images = toPixels(c, out, n);
    if (asked && (asked.steps === 0 || asked.masks)) {
      keepKnownPixels(images, asked, n, c.in_channels, c.image_size);
    }
    return images;
  })().finally(() => generating.delete(model));
}

/** An edit of images as one of the model's own space (their Haar bands, blocks of masks). */
function inModelSpace(c: ModelConfig, e: EditPlan): EditPlan {
  if (c.wavelet === "none") return e;
  const S = c.image_size, count = (a: Float32Array, one: number) => a.length / one;
  return {
    ...e,
    images: toModelSpace(c, e.images, count(e.images, c.in_channels * S * S)),
    masks: e.masks && haarMask(e.masks, count(e.masks, S * S), S),
  };
}

/**
 * The start image's pixels where the edit keeps them (all, when it ran no step), exactly: a Haar
 * model repaints whole 2×2 blocks (haarMask), and its inverse transform of kept bands is the start
 * image only to within rounding.
 */
function keepKnownPixels(images: Float32Array, e: EditPlan, n: number, C: number, S: number) {
  const plane = S * S, per = C * plane, mask = e.steps === 0 ? null : e.masks;
  const many = { image: e.images.length === n * per, mask: mask?.length === n * plane };
  for (let b = 0; b < n; b++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < plane; i++) {
        if (mask && mask[(many.mask ? b * plane : 0) + i] >= 0.5) continue;
        images[b * per + c * plane + i] = e.images[(many.image ? b * per : 0) + c * plane + i];
      }
    }
  }
}

/** The models a generate is running on. */
const generating = new WeakSet<PixArt>();

/** A guidance scale is a number from 0 (the unconditional model) to MAX_GUIDANCE; 1 is none. */
export function checkGuidance(w: number): void {
  if (!(w >= 0 && w <= MAX_GUIDANCE)) {
    throw new Error(`guidance must be a number from 0 to ${MAX_GUIDANCE} (1 = none), got ${w}`);
  }
}

/** Compiles the kernels of one guided step (at both ends of the schedule) before sampling. */
async function warmUpSampling(
  model: PixArt,
  schedule: Schedule,
  cond: Condition,
  negative: Condition | null,
  B: number,
  o: GenerateOptions,
): Promise<void> {
  // its own ε function: the dry run leaves the cached caption path and packed weights unwritten
  const eps = guidedEpsOf(model, schedule, cond, o, negative);
  const { channels, size } = modelSpace(model.config);
  const x = empty([B, channels, size, size]);
  try {
    await warmUp(() =>
      noGrad(() => {
        eps(x, schedule.T - 1);
        eps(x, 0);
      }), { onProgress: o.onWarmUp });
  } finally {
    eps.dispose();
    x.dispose();
  }
}

/**
 * The guided ε̂(x, t) the samplers read, whatever the model predicts: guidance combines the two
 * branches' outputs in the model's own space (an affine change of variables at a fixed x_t, so the
 * same as combining their ε̂), then epsFromOutput converts.
 */
export function guidedEpsOf(
  model: PixArt,
  schedule: Schedule,
  cond: Condition,
  o: Pick<GenerateOptions, "guidance" | "guidanceInterval">,
  negative: Condition | null = null,
): ((x: Tensor, t: number) => Tensor) & { dispose(): void } {
  const out = model.guidedEps(cond, o.guidance, o.guidanceInterval, negative);
  if (predictsEps(schedule)) return out;
  return Object.assign((x: Tensor, t: number) => epsFromOutput(schedule, x, out(x, t), t), {
    dispose: () => out.dispose(),
  });
}

/** Samples from … to − 1's part of an edit: their start images and masks. */
function batchEdit(e: EditPlan, from: number, to: number, per: number, plane: number): EditPlan {
  // one image (mask) for every sample, or one each
  const part = (a: Float32Array, one: number) =>
    a.length === one ? a : a.subarray(from * one, to * one);
  return { ...e, images: part(e.images, per), masks: e.masks && part(e.masks, plane) };
}

/** One batch of B samples of condition `cond` (no gradients); returns x₀ in the model's space. */
function sampleBatch(
  model: PixArt,
  schedule: Schedule,
  cond: Condition,
  negative: Condition | null,
  B: number,
  gen: Generator,
  o: GenerateOptions,
  edit: EditPlan | null,
  tick: (s: StepInfo) => void,
): Tensor {
  const { channels, size } = modelSpace(model.config);
  const shape = [B, channels, size, size];
  const noise = () => tidy(() => gen.normal(shape));
  const eps = guidedEpsOf(model, schedule, cond, o, negative);
  const T = schedule.T;
  const tau = o.sampler === "ancestral" ? [] : timePoints(T, o.steps);
  // the sampler from time point a to time point b (of T, or of tau), x at a
  const run = (x: Tensor, a: number, b: number, constrain?: Constrain): Tensor => {
    if (o.sampler === "ancestral") {
      return sampleAncestral(schedule, eps, x, {
        noise,
        threshold: ancestralThreshold(model.config),
        from: T - 1 - a,
        to: T - b,
        constrain,
        onStep: tick,
      });
    }
    if (a === b) return x;
    return FAST_SAMPLERS[o.sampler](schedule, eps, x, {
      timePoints: tau.slice(a, b + 1),
      // a fast sampler's last time point, 0, is its output, the clean image (edit.ts's −1)
      constrain: constrain && ((x, t) => constrain(x, t === 0 ? -1 : t)),
      onStep: tick,
    });
  };
  try {
    if (edit) return editSamples(schedule, edit, B, channels, size, run, noise);
    const xT = gen.normal(shape).keep();
    const x = run(xT, 0, o.sampler === "ancestral" ? T : o.steps);
    if (x !== xT) xT.dispose();
    return x;
  } finally {
    eps.dispose();
  }
}

/**
 * The ancestral sampler's dynamic thresholding (Saharia et al. 2022, Imagen §2.3) bounds x̂0 as
 * pixels in [−1, 1]. A model on Haar bands predicts bands, whose details reach ±2 at a sharp edge
 * inside a 2×2 block, so there it would flatten edges or grey the image: such a model samples
 * unthresholded, as the fast samplers always do. Undefined: the sampler's default.
 */
export function ancestralThreshold(c: ModelConfig): null | undefined {
  return c.wavelet === "haar" ? null : undefined;
}
