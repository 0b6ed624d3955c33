// Editing an image with a sampler: image-to-image (SDEdit, Meng et al. 2022) starts the sampler at
// the time point a strength names, from the image noised to it; inpainting (RePaint, Lugmayr et
// al. 2022) keeps the known region — the image, noised to each step's time — after every step,
// and may resample: jump back a few steps by re-noising and sample them again, so that the
// repainted region agrees with the kept one.

import { add, copy, lincomb, mul, type Tensor, tensor, tidy } from "../kernels/mod.ts";
import type { Schedule } from "./schedule.ts";
import { timePoints } from "./schedule.ts";
import type { Constrain, SamplerName } from "./samplers.ts";

/** Image-to-image strength when none is given: diffusers' img2img pipelines' default. */
export const DEFAULT_STRENGTH = 0.8;

/** What generate() takes to edit an image instead of drawing from noise. */
export interface EditOptions {
  /**
   * The start image, [C, S, S] values in [-1, 1] at the model's size (for every sample) or
   * [n, C, S, S] (one per sample): io/image_file.ts's readImageFile converts a file.
   */
  initImage?: Float32Array | null;
  /**
   * How much of the sampler's path runs from the noised start image: 0 returns it, 1 runs all of
   * it (default 0.8, with a mask 1).
   */
  strength?: number;
  /**
   * Inpainting: [S, S] (for every sample) or [n, S, S], at least ½ where the image is repainted;
   * elsewhere every step keeps the start image, noised to the step's time.
   */
  mask?: Float32Array | null;
  /** RePaint's resampling: each segment of `jump` steps is sampled this many times (default 1) */
  resample?: number;
  /** the segment, in sampler steps (default 10/250 of the steps, at least 1, as RePaint's) */
  jump?: number;
}

/** An edit, checked: the start images and masks, the start point and the path from it. */
export interface EditPlan {
  images: Float32Array;
  masks: Float32Array | null;
  /** the sampler's time points' timesteps (samplerTimes) */
  times: number[];
  start: number;
  path: PathMove[];
  /** sampler steps along the path */
  steps: number;
}

/** Checks `o` against n samples of [C, size, size]; null when it edits nothing. */
export function planEdit(
  o: EditOptions,
  n: number,
  C: number,
  size: number,
  sampler: SamplerName,
  T: number,
  steps: number,
): EditPlan | null {
  const per = C * size * size;
  if (!o.initImage) {
    for (const k of ["mask", "strength", "resample", "jump"] as const) {
      if (o[k] != null) throw new Error(`${k} needs a start image (initImage, --init-image)`);
    }
    return null;
  }
  const { initImage: images, mask } = o;
  if (images.length !== per && images.length !== n * per) {
    throw new Error(
      `initImage has ${images.length} values: give [${C}, ${size}, ${size}] (${per}) for every ` +
        `sample or [${n}, ${C}, ${size}, ${size}] (${n * per}), the model's size`,
    );
  }
  if (!images.every(Number.isFinite)) throw new Error("initImage has values that are not finite");
  if (mask && mask.length !== size * size && mask.length !== n * size * size) {
    throw new Error(
      `mask has ${mask.length} values: give [${size}, ${size}] for every sample or ` +
        `[${n}, ${size}, ${size}], the model's size`,
    );
  }
  if (!mask && (o.resample != null || o.jump != null)) {
    throw new Error("resample and jump are RePaint's: they need a mask");
  }
  const S = sampler === "ancestral" ? T : steps;
  const start = strengthStart(S, o.strength ?? (mask ? 1 : DEFAULT_STRENGTH));
  const run = S - start, resample = o.resample ?? 1;
  if (o.jump != null && resample === 1) {
    throw new Error("jump is how far resample goes back: give resample 2 or more");
  }
  const jump = o.jump ?? defaultJump(S, run);
  if (resample > 1 && jump >= run) {
    // RePaint goes back `jump` of the steps that run: as many or more, it never goes back
    const raise = `raise the strength${sampler === "ancestral" ? "" : " or the steps"}`;
    throw new Error(
      o.jump != null
        ? `jump ${jump} must be below the ${run} sampler steps that run: lower it, or ${raise}`
        : `resample ${resample} needs at least 2 sampler steps to run, and ${run} run: ${raise}, ` +
          `or set resample 1`,
    );
  }
  const path = repaintPath(S, start, jump, resample);
  return {
    images,
    masks: mask ?? null,
    times: samplerTimes(sampler, T, steps),
    start,
    path,
    steps: path.reduce((a, m) => a + (m.kind === "sample" ? m.to - m.from : 0), 0),
  };
}

/** RePaint's jump: 10 of its 250 steps (Lugmayr et al. §4.2), in proportion to a sampler's steps. */
export const REPAINT_JUMP_FRACTION = 10 / 250;

/**
 * The timesteps of a sampler's time points: where it evaluates ε, step by step, then −1 for its
 * output (taken as the clean image: ᾱ = 1). The ancestral sampler steps through every t.
 */
export function samplerTimes(sampler: SamplerName, T: number, steps: number): number[] {
  const ts = sampler === "ancestral"
    ? Array.from({ length: T }, (_, k) => T - 1 - k)
    : timePoints(T, steps).slice(0, -1);
  return [...ts, -1];
}

/** ᾱ_t, with ᾱ_{−1} = 1 (the clean image). */
export function alphaBar(s: Schedule, t: number): number {
  return t < 0 ? 1 : s.alphasCumprod[t];
}

/**
 * The time point an image-to-image strength starts at: of S steps the last ⌊S·strength⌋ run, as
 * diffusers' img2img pipelines count (`get_timesteps`), so strength 0 runs none and returns the
 * image, strength 1 all of them.
 */
export function strengthStart(S: number, strength: number): number {
  if (!(strength >= 0 && strength <= 1)) {
    throw new Error(`strength must be in [0, 1], got ${strength}`);
  }
  // 1e-9: a strength written in decimals (0.3 of 20 steps) names 6 steps, not 5
  return S - Math.min(S, Math.floor(S * strength + 1e-9));
}

/**
 * The default jump of RePaint's resampling for a sampler of S steps of which `run` run: RePaint's
 * share of S, at least 1, and shorter than the steps that run (else it would never go back).
 */
export function defaultJump(S: number, run = S): number {
  return Math.max(1, Math.min(Math.round(S * REPAINT_JUMP_FRACTION), run - 1));
}

/** A piece of a RePaint path: sample from time point `from` down to `to`, or re-noise back up. */
export type PathMove = { kind: "sample" | "renoise"; from: number; to: number };

/**
 * RePaint's path over time points `start` … S (Lugmayr et al., Alg. 1 with jumps; the order of
 * diffusers' RePaintScheduler.set_timesteps): sample down, and on reaching every jump-th point
 * above the end (the end included, the topmost segment not) go back `jump` points by re-noising
 * and sample them again, `resample` − 1 times. resample 1 is a single pass.
 */
export function repaintPath(S: number, start: number, jump: number, resample: number): PathMove[] {
  if (!Number.isInteger(resample) || resample < 1) {
    throw new Error(`resample must be an integer ≥ 1, got ${resample}`);
  }
  if (!Number.isInteger(jump) || jump < 1) {
    throw new Error(`jump must be an integer ≥ 1, got ${jump}`);
  }
  // diffusers counts d = steps left, N … 0; a point's index here is S − d
  const N = S - start;
  const left = new Map<number, number>();
  for (let d = 0; d < N - jump; d += jump) left.set(d, resample - 1);
  const moves: PathMove[] = [];
  let runFrom = N;
  for (let d = N; d >= 1;) {
    d--;
    const k = left.get(d) ?? 0;
    if (k > 0) {
      left.set(d, k - 1);
      moves.push({ kind: "sample", from: S - runFrom, to: S - d });
      moves.push({ kind: "renoise", from: S - d, to: S - d - jump });
      d += jump;
      runFrom = d;
    }
  }
  moves.push({ kind: "sample", from: S - runFrom, to: S });
  return moves;
}

/** x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·z, the forward process (Ho et al. eq. 4); x0 itself at t = −1. */
export function noiseTo(s: Schedule, x0: Tensor, t: number, z: () => Tensor): Tensor {
  if (t < 0) return copy(x0);
  const a = alphaBar(s, t);
  return lincomb([x0, z()], [Math.sqrt(a), Math.sqrt(1 - a)]);
}

/**
 * q(x_to | x_from) for to > from in time (RePaint's jump back): √(ᾱ_to/ᾱ_from)·x + √(1 −
 * ᾱ_to/ᾱ_from)·z, the forward process over the steps between.
 */
export function renoise(s: Schedule, x: Tensor, from: number, to: number, z: () => Tensor): Tensor {
  const r = alphaBar(s, to) / alphaBar(s, from);
  return lincomb([x, z()], [Math.sqrt(r), Math.sqrt(1 - r)]);
}

/**
 * A mask's planes as two tensors [B, C, H, W]: 1 where the sample is repainted (mask ≥ ½, as
 * diffusers binarizes an inpainting mask), and its complement, where the image is kept.
 */
export function maskTensors(
  mask: Float32Array,
  B: number,
  C: number,
  S: number,
): { repaint: Tensor; keep: Tensor } {
  const per = S * S;
  const m = new Float32Array(B * C * per), k = new Float32Array(B * C * per);
  const many = mask.length === B * per;
  for (let b = 0; b < B; b++) {
    for (let c = 0; c < C; c++) {
      for (let i = 0; i < per; i++) {
        const r = mask[(many ? b * per : 0) + i] >= 0.5 ? 1 : 0;
        m[(b * C + c) * per + i] = r;
        k[(b * C + c) * per + i] = 1 - r;
      }
    }
  }
  const shape = [B, C, S, S];
  return { repaint: tensor(m, shape).keep(), keep: tensor(k, shape).keep() };
}

/** repaint·x + keep·known: x where the mask repaints, the known values elsewhere (exactly). */
export function keepKnown(x: Tensor, known: Tensor, m: { repaint: Tensor; keep: Tensor }): Tensor {
  return add(mul(x, m.repaint), mul(known, m.keep));
}

/**
 * An edit of B samples [B, C, size, size]: the start images noised to the start point, then the
 * path, `run` sampling its pieces (with the known region kept where there is a mask) and RePaint's
 * jumps re-noising between them. Draws every noise from `noise`.
 */
export function editSamples(
  s: Schedule,
  e: EditPlan,
  B: number,
  C: number,
  size: number,
  run: (x: Tensor, from: number, to: number, constrain?: Constrain) => Tensor,
  noise: () => Tensor,
): Tensor {
  const per = C * size * size;
  const images = e.images.length === per && B > 1
    ? Float32Array.from({ length: B * per }, (_, i) => e.images[i % per])
    : e.images;
  const x0 = tensor(images, [B, C, size, size]).keep();
  const m = e.masks && maskTensors(e.masks, B, C, size);
  const constrain: Constrain | undefined = m
    ? (x, t) => keepKnown(x, noiseTo(s, x0, t, noise), m)
    : undefined;
  const { times } = e;
  let x = tidy(() => noiseTo(s, x0, times[e.start], noise));
  try {
    for (const mv of e.path) {
      const prev = x;
      x = mv.kind === "sample"
        ? run(prev, mv.from, mv.to, constrain)
        : tidy(() => renoise(s, prev, times[mv.from], times[mv.to], noise));
      if (x !== prev) prev.dispose();
    }
    return x;
  } finally {
    x0.dispose();
    m?.repaint.dispose();
    m?.keep.dispose();
  }
}
