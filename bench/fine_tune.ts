// Fine-tuning's memory and time: a training step of one config's model with all its weights
// trained, or frozen under a LoRA adapter (the config's lora section: train:lora's rank, alpha and
// targets), each with and without activation checkpointing (train.checkpoint_blocks), on the same
// batch. The four are alternated within every repetition, each built afresh and disposed after its
// step, so that they see the same load on the machine and the pool holds one of them at a time:
// the ratios to the full fine-tune of the same repetition are what to compare.

import { Ema, empty, pool, sync, tapeSavedBytes, trainStep, zero } from "../kernels/mod.ts";
import { Lora } from "../model/lora.ts";
import { configSchedule } from "../diffusion/schedule.ts";
import { batchLoss } from "../train/batch.ts";
import { type BenchRun, MB, median, r3 } from "./measure.ts";
import { benchBatch } from "./steps.ts";
import { optimizerFor } from "../train/optimizer.ts";
import { type Subject, subjectModel } from "./subjects.ts";

/** What a fine-tune trains and whether its blocks are checkpointed, as measurement names end. */
export const FINE_TUNES = ["full", "full+checkpoint", "lora", "lora+checkpoint"] as const;
export type FineTune = (typeof FINE_TUNES)[number];

/** One step of one fine-tune after an untimed one: its time, the pool's peak, what it saved. */
interface Measured {
  ms: number;
  peak: number;
  /** in use before the step: the weights, the trained weights' Adam moments and EMA */
  before: number;
  /** what the tape held for backward at the end of the forward pass (the weights excluded) */
  saved: number;
  /** the weights trained, and the model's own */
  trained: number;
  params: number;
}

async function measure(s: Subject, which: FineTune): Promise<Measured> {
  const c = s.model, tc = s.config.train;
  const schedule = configSchedule(s.config.diffusion);
  const model = await subjectModel(s, c);
  let lora: Lora | null = null;
  if (which.startsWith("lora")) {
    model.params.requireGrad(false);
    // a base of random weights: the hash only names it, nothing checks it here
    lora = Lora.init(s.config.lora, tc.seed, {
      sha256: "0".repeat(64),
      name: s.name,
      weights: "raw",
      config: c,
    });
    model.lora = [{ lora, scale: 1 }];
  } else model.params.requireGrad(true);
  const trained = lora ? lora.params : model.params;
  const cfg = {
    ...s.config,
    model: c,
    train: { ...tc, checkpoint_blocks: which.endsWith("checkpoint") },
  };
  const opt = optimizerFor(trained.tensors(), cfg);
  const ema = new Ema(trained.tensors(), tc.ema_decay);
  const lossSum = empty([1]).keep();
  const forwardLoss = batchLoss(cfg, c, model, schedule, benchBatch(cfg, s, model, schedule));
  const all = [...model.params.tensors(), ...(lora?.params.tensors() ?? [])];
  let saved = 0, taken = 0;
  const step = () => {
    zero(lossSum);
    trainStep(
      () => {
        const loss = forwardLoss();
        saved = tapeSavedBytes(all);
        return loss;
      },
      taken++,
      { opt, ema, lossSum },
    );
  };
  try {
    step();
    await sync();
    pool.resetPeak();
    const before = pool.stats.inUseBytes;
    const t0 = performance.now();
    step();
    await sync();
    const ms = performance.now() - t0;
    const peak = pool.stats.peakInUseBytes;
    return { ms, peak, before, saved, trained: trained.count(), params: model.params.count() };
  } finally {
    lossSum.dispose();
    ema.dispose();
    opt.dispose();
    model.lora = [];
    lora?.dispose();
    model.dispose();
    pool.trim();
  }
}

/**
 * `fine_tune/C/<fine-tune>` for the fine-tunes `want` names: the median step time and the pool's
 * peak over `reps` repetitions, and their ratios to the full fine-tune's in the same repetition
 * (the full one is measured in every repetition when any is wanted).
 */
export async function benchFineTune(
  run: BenchRun,
  s: Subject,
  want: ReadonlySet<FineTune>,
  reps: number,
): Promise<void> {
  const kinds = FINE_TUNES.filter((k) => k === "full" || want.has(k));
  const got = new Map<FineTune, Measured[]>(kinds.map((k) => [k, []]));
  run.progress(`${s.name} fine-tunes: a warm-up step of each (compiles the shaders)`);
  for (const k of kinds) await measure(s, k);
  for (let r = 0; r < reps; r++) {
    for (const k of kinds) {
      run.progress(`${s.name} fine-tunes: rep ${r + 1} of ${reps}, ${k}`);
      got.get(k)!.push(await measure(s, k));
    }
  }
  const full = got.get("full")!;
  for (const k of kinds) {
    if (!want.has(k)) continue;
    const m = got.get(k)!;
    const peak = Math.max(...m.map((x) => x.peak));
    run.emit({
      name: `fine_tune/${s.name}/${k}`,
      ms: r3(median(m.map((x) => x.ms))),
      gflops: null,
      trained_params: m[0].trained,
      params: m[0].params,
      peak_in_use_mb: MB(peak),
      in_use_before_step_mb: MB(m[0].before),
      activations_mb: MB(m[0].saved),
      // per repetition against the full fine-tune's step of the same repetition
      peak_vs_full: r3(median(m.map((x, i) => x.peak / full[i].peak))),
      ms_vs_full: r3(median(m.map((x, i) => x.ms / full[i].ms))),
      ms_vs_full_range: [
        r3(Math.min(...m.map((x, i) => x.ms / full[i].ms))),
        r3(Math.max(...m.map((x, i) => x.ms / full[i].ms))),
      ],
      batch: s.batch,
      checkpoint_blocks: k.endsWith("checkpoint"),
      lora: k.startsWith("lora") ? { ...s.config.lora } : null,
      reps,
    });
  }
}
