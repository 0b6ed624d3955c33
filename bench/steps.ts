// A model's steps as the product runs them, for one config (bench/subjects.ts): a training step
// (forward, ε-MSE loss with the config's min-SNR weighting, backward, AdamW with clipping, EMA),
// its memory against what it needs, a guided sampling step, and a grid of images.

import {
  backward,
  byteSize,
  clearTape,
  counters,
  Ema,
  empty,
  noGrad,
  pool,
  randomNormal,
  sync,
  tapeSavedBytes,
  tidy,
  trainStep,
  zero,
} from "../kernels/mod.ts";
import { captionFor } from "../io/captions.ts";
import type { Config } from "../io/config.ts";
import { mulberry32 } from "../kernels/host_random.ts";
import { type ModelConfig, modelSpace } from "../model/config.ts";
import type { Condition, PixArt } from "../model/pixart.ts";
import { forwardFlops } from "../model/cost.ts";
import { sampleWeightPrecision, useHalfWeights } from "../model/half_weights.ts";
import { configSchedule, type Schedule } from "../diffusion/schedule.ts";
import { generate } from "../diffusion/generate.ts";
import { batchLoss, drawStep, type StepBatch } from "../train/batch.ts";
import { optimizerFor } from "../train/optimizer.ts";
import { type BenchRun, gflops, type Line, MB, median, r3, timeReps } from "./measure.ts";
import { profileStep } from "./profile.ts";
import { modelSummary, type Subject, subjectModel } from "./subjects.ts";

/** A fixed batch of conditions: class labels, or captions of digits; a share of them dropped. */
function conditionOf(model: PixArt, B: number, seed: number, pDrop: number): Condition {
  const c = model.config;
  const rng = mulberry32(seed);
  const labels = Array.from({ length: B }, () => Math.floor(rng() * 10) % c.num_classes);
  const drop = Uint8Array.from({ length: B }, () => (rng() < pDrop ? 1 : 0));
  if (c.stage === 1) {
    return {
      kind: "class",
      labels: Int32Array.from(labels, (l, b) => drop[b] ? c.num_classes : l),
    };
  }
  return { kind: "text", ...model.tokenize(labels.map((l) => captionFor(l, rng))), drop };
}

export interface TrainWants {
  time: boolean;
  memory: boolean;
  profile: boolean;
  /** also time forward, forward + backward and the optimiser alone */
  phases: boolean;
  reps: number;
}

/**
 * A batch of the config's shape drawn as train/batch.ts drawBatch draws one (timesteps, dropped
 * conditions, captions, drop-path, masked tokens, noise), on random images (no data set).
 */
export function benchBatch(
  cfg: Config,
  s: Subject,
  model: PixArt,
  schedule: Schedule,
): StepBatch {
  const c = s.model, B = s.batch;
  const S = c.image_size, C = c.in_channels;
  const rng = mulberry32(7);
  const labels = Int32Array.from({ length: B }, () => Math.floor(rng() * 10) % c.num_classes);
  return drawStep(cfg, c, model, schedule, 0, {
    images: Float32Array.from({ length: B * C * S * S }, () => rng() * 2 - 1),
    labels,
    caption: (b, r) => captionFor(labels[b], r),
  });
}

export async function benchTrain(run: BenchRun, s: Subject, want: TrainWants): Promise<void> {
  const c = s.model, tc = s.config.train, B = s.batch;
  const schedule = configSchedule(s.config.diffusion);
  const model = await subjectModel(s, c);
  model.params.requireGrad(true);
  const params = model.params.tensors();
  const cfg = { ...s.config, model: c };
  const opt = optimizerFor(params, cfg);
  const batch = benchBatch(cfg, s, model, schedule);
  // forward and loss as the trainer records them (train/batch.ts batchLoss); the tape is left
  // for backward()
  const forwardLoss = batchLoss(cfg, c, model, schedule, batch);
  const paramSet = new Set(params);
  const ema = new Ema(params, tc.ema_decay);
  const lastLoss = empty([1]).keep();
  // what the tape holds for backward, and what the pool holds, between forward and backward
  let savedBytes = 0, afterForward = 0, taken = 0;
  const step = () => {
    zero(lastLoss);
    trainStep(
      () => {
        const loss = forwardLoss();
        savedBytes = tapeSavedBytes(paramSet);
        afterForward = pool.stats.inUseBytes;
        return loss;
      },
      taken++,
      { opt, ema, lossSum: lastLoss },
    );
  };

  run.progress(`${s.name} training step: warm-up (compiles the shaders)`);
  await sync();
  let t0 = performance.now();
  const warm = await run.warmUp(step);
  step();
  await sync();
  const warmupMs = performance.now() - t0;
  run.progress(`${s.name} training step: warm-up took ${(warmupMs / 1000).toFixed(1)} s`);

  const ms: number[] = [], host: number[] = [];
  // where the time goes: forward + loss alone, forward + loss + backward, and the optimiser alone
  // (on the gradients that backward left), each rep right after a full step so that both see
  // the same load on the machine
  const ph = { fwd: [] as number[], fwdBwd: [] as number[], optim: [] as number[] };
  let peak = 0, before = 0, dispatches = 0, submits = 0, saved = 0, forwardHeld = 0;
  const timedReps = want.time || want.memory ? want.reps : 0;
  for (let r = 0; r < timedReps; r++) {
    await sync();
    pool.resetPeak();
    before = pool.stats.inUseBytes;
    const d0 = counters.dispatches, s0 = counters.submits;
    t0 = performance.now();
    step();
    host.push(performance.now() - t0);
    await sync();
    ms.push(performance.now() - t0);
    dispatches = counters.dispatches - d0;
    submits = counters.submits - s0;
    if (pool.stats.peakInUseBytes >= peak) {
      peak = pool.stats.peakInUseBytes;
      saved = savedBytes;
      forwardHeld = afterForward;
    }
    if (!want.phases || !want.time) continue;
    t0 = performance.now();
    tidy(() => {
      forwardLoss();
      clearTape();
    });
    await sync();
    ph.fwd.push(performance.now() - t0);
    t0 = performance.now();
    tidy(() => backward(forwardLoss()));
    await sync();
    ph.fwdBwd.push(performance.now() - t0);
    t0 = performance.now();
    tidy(() => opt.step());
    await sync();
    ph.optim.push(performance.now() - t0);
    opt.zeroGrad();
  }
  const loss = taken ? (await lastLoss.read())[0] : null;

  const fwd = forwardFlops(c, B);
  const flop = 3 * fwd.total;
  const med = median(ms);
  const nParams = model.params.count();
  if (want.time) {
    const line: Line = {
      name: `train_step/${s.name}`,
      ms: r3(med),
      gflops: gflops(flop, med),
      flop,
      gflop: r3(flop / 1e9),
      fwd_gflop: r3(fwd.total / 1e9),
      fwd_gflop_split: fwd.split,
      model: modelSummary(c, B),
      params: nParams,
      host_ms: r3(median(host)),
      dispatches,
      submits,
      warmup_ms: r3(warmupMs),
      warmup_kernels: warm.stats.kernels,
      warmup_compiled: warm.stats.compiled,
      warmup_tuned: warm.stats.tuned,
      variants: warm.variants,
      loss: loss === null ? null : r3(loss),
      reps: want.reps,
    };
    if (ph.fwd.length) {
      const f = median(ph.fwd), fb = median(ph.fwdBwd);
      Object.assign(line, {
        fwd_ms: r3(f),
        fwd_gflops: gflops(fwd.total, f),
        bwd_ms: r3(fb - f),
        bwd_gflops: gflops(2 * fwd.total, fb - f),
        optim_ms: r3(median(ph.optim)),
      });
    }
    run.emit(line);
  }
  if (want.memory) {
    // parameters, Adam's two moments and the gradients, 4 bytes each
    const state = 4 * 4 * nParams;
    const required = state + saved;
    run.emit({
      name: `memory/train_step/${s.name}`,
      ms: r3(med),
      gflops: null,
      peak_in_use_mb: MB(peak),
      required_mb: MB(required),
      ratio: r3(peak / required),
      params_moments_grads_mb: MB(state),
      activations_mb: MB(saved),
      params_mb: MB(4 * nParams),
      peak_over_state: r3(peak / state),
      in_use_before_step_mb: MB(before),
      // in use between forward and backward: the state, the saved activations, the intermediates
      // that no backward reads (they live until the step's scope ends) and size-class rounding
      in_use_after_forward_mb: MB(forwardHeld),
      pool_allocated_mb: MB(pool.stats.allocatedBytes),
      pool_buffers: pool.stats.buffers,
    });
  }
  if (want.profile) await profileStep(run, `profile/train_step/${s.name}`, step);
  lastLoss.dispose();
  ema.dispose();
  opt.dispose();
  model.dispose();
  pool.trim();
}

/** A model to sample from: loaded weights need no gradient; with `half`, f16 linear weights. */
async function samplingModel(s: Subject, c: ModelConfig, half: boolean): Promise<PixArt> {
  const model = await subjectModel(s, c);
  model.params.requireGrad(false);
  if (half) useHalfWeights(model, "all");
  return model;
}

export interface SampleWants {
  time: boolean;
  profile: boolean;
  /** the linear weights in f16 (model/half_weights.ts), as sampling holds them with shader-f16 */
  half: boolean;
  reps: number;
}

/**
 * One guided sampling step at the grid's batch: conditional and unconditional branches in one
 * batch of 2×B; the caption path (text encoder, cross-attention K/V) runs once per sampling run,
 * at the warm-up, as in sampling. Returns the median ms.
 */
export async function benchSample(
  run: BenchRun,
  s: Subject,
  want: SampleWants,
  f32Ms?: number,
): Promise<number | undefined> {
  const c = s.model;
  const B = s.sampleBatch, { channels: C, size: S } = modelSpace(c);
  const guidance = s.config.sample.guidance;
  const model = await samplingModel(s, c, want.half);
  const weightBytes = model.params.tensors().reduce((n, t) => n + byteSize(t.size, t.dtype), 0);
  const name = `sample_step/${s.name}${want.half ? "/f16" : ""}`;
  const cond = conditionOf(model, B, 5, 0);
  const eps = model.guidedEps(cond, guidance);
  const x = randomNormal([B, C, S, S], 21);
  run.progress(`${name}: warm-up`);
  let peak = 0;
  const one = () => {
    tidy(() => {
      noGrad(() => eps(x, 500));
    });
  };
  // a throwaway ε for the dry run: it would cache an unwritten caption path and packed weights
  const dry = model.guidedEps(cond, guidance);
  const warm = await run.warmUp(() => tidy(() => noGrad(() => dry(x, 500))));
  dry.dispose();
  const res = await timeReps(want.time ? want.reps : 0, () => {
    pool.resetPeak();
    one();
    peak = Math.max(peak, pool.stats.peakInUseBytes);
  });
  if (want.profile) await profileStep(run, `profile/${name}`, one);
  eps.dispose();
  x.dispose();
  model.dispose();
  pool.trim();
  if (!want.time) return undefined;
  const fwd = forwardFlops(c, 2 * B);
  // the caption path ran once, at the warm-up, as in sampling
  const flop = fwd.total - fwd.caption;
  const med = median(res.ms);
  run.emit({
    name,
    ms: r3(med),
    weights: want.half ? "f16" : "f32",
    weights_mb: MB(weightBytes),
    ...(want.half && f32Ms ? { speedup_vs_f32: r3(f32Ms / med) } : {}),
    gflops: gflops(flop, med),
    flop,
    gflop: r3(flop / 1e9),
    gflop_split: fwd.split,
    caption_gflop_once: r3(fwd.caption / 1e9),
    batch: B,
    forward_batch: 2 * B,
    guidance,
    model: modelSummary(c, 2 * B),
    peak_in_use_mb: MB(peak),
    warmup_ms: r3(res.warmup),
    variants: warm.variants,
    reps: want.reps,
  });
  return med;
}

/**
 * A grid as `deno task sample --grid` draws it: the config's sampler, steps and guidance, its
 * images in one batch, the weights in f16 where the adapter samples so (`sampleWeightPrecision`:
 * with shader-f16; an exported model's are f16 everywhere); warm-up included (a user's first grid
 * pays it), timed once.
 */
export async function benchGrid(run: BenchRun, s: Subject): Promise<void> {
  const c = s.model, sc = s.config.sample;
  const model = await samplingModel(s, c, sampleWeightPrecision() === "all");
  const classNames = Array.from({ length: c.num_classes }, (_, i) => `class ${i}`);
  const prompts = Array.from(
    { length: s.gridImages },
    (_, i) => c.stage === 1 ? classNames[i % c.num_classes] : captionFor(i % 10, () => 0),
  );
  const steps = s.short ? Math.min(sc.steps, 2) : sc.steps;
  const sampler = s.short && sc.sampler === "ancestral" ? "ddim" : sc.sampler;
  await sync();
  pool.resetPeak();
  const t0 = performance.now();
  let firstStep = 0;
  await generate(model, configSchedule(s.config.diffusion), prompts, classNames, {
    sampler,
    steps,
    guidance: sc.guidance,
    seed: 0,
    onProgress: (done) => {
      if (done === 1) firstStep = performance.now();
    },
  });
  const ms = performance.now() - t0;
  run.emit({
    name: `grid/${s.name}`,
    ms: r3(ms),
    gflops: null,
    images: s.gridImages,
    weights: model.params.tensors().some((t) => t.dtype === "f16") ? "f16" : "f32",
    sampler,
    steps,
    guidance: sc.guidance,
    // from the first step's end (compile and warm-up before it) to the last image read back
    after_first_step_ms: firstStep ? r3(performance.now() - firstStep) : null,
    peak_in_use_mb: MB(pool.stats.peakInUseBytes),
    model: modelSummary(c, 2 * s.gridImages),
  });
  model.dispose();
  pool.trim();
}
