// The PixArt-α training loop (docs/spec.md §5 and §7), read top-down like DiT's train.py: open the
// run's folder, load the data, build the model and its optimiser, then repeat a handful of named
// parts — next batch, one step, log, evaluate, checkpoint — until the last step or a stop signal.
//
// What a user can rely on: checkpoints are written atomically and only with finite weights; a run
// that diverges stops and keeps its last good checkpoint; an interrupted run saves one to resume
// from; --resume continues exactly where it stopped (weights, optimiser, EMA, data order).
//
// The loop touches no file itself: it writes through a RunStore (train/run_store.ts) and reads
// through TrainSources (train/train_sources.ts), so the command line (train/folder_run.ts, a
// folder on disk) and the web page (web/, the tab's storage) run this same code.

import { formatDuration } from "../io/duration.ts";
import {
  type Adam,
  deviceInfo,
  Ema,
  empty,
  fill,
  FiniteWatch,
  pool,
  submitted,
  trainStep,
  trainStepOrSkip,
  warmUp,
  zero,
} from "../kernels/mod.ts";
import { type Config, configAt, configDocument } from "../io/config_schema.ts";
import { Batcher, type BatcherState } from "../io/batcher.ts";
import { classBalanceWeights, describeBalance } from "../io/class_balance.ts";
import { mixSeed } from "../kernels/host_random.ts";
import { MNIST_WORDS } from "../io/captions.ts";
import { shuffledIndices } from "../kernels/host_random.ts";
import {
  checkpointClassNames,
  checkpointContents,
  checkpointTensors,
  modelConfigFromJson,
} from "../model/checkpoint_bytes.ts";
import { tokenize } from "../model/tokenizer.ts";
import { tokenizeWords } from "../model/word_tokenizer.ts";
import type { WordTable } from "../io/word_table.ts";
import type { ModelConfig } from "../model/config.ts";
import { checkTrainingFits } from "../model/memory.ts";
import { Params } from "../model/params.ts";
import { PixArt } from "../model/pixart.ts";
import { generate } from "../diffusion/generate.ts";
import { checkpointDiffusion, configSchedule, type Schedule } from "../diffusion/schedule.ts";
import { batchLoss, drawBatch } from "./batch.ts";
import { TrainingData } from "./data.ts";
import { lrNotes } from "./lr_schedule.ts";
import { resumeSettingsNote } from "./resume_note.ts";
import { optimizerFor } from "./optimizer.ts";
import { initFromEarlierStage, modelStageOf, resumeFrom } from "./model_init.ts";
import type { RunStore } from "./run_store.ts";
import {
  checkBaseClasses,
  loraSamplingModel,
  type LoraTraining,
  loraWeights,
  type Resumed,
} from "./lora_run.ts";
import { type Lora, loraCheckpointData, type LoraContents, loraContents } from "../model/lora.ts";
import type { Evaluator, RunEvaluation, TrainSources } from "./train_sources.ts";

/**
 * Asks a run to stop (a signal on the command line, the page's Stop button) or to wait (Pause):
 * train/stop_signal.ts's StopSignal is one.
 */
export interface RunControl {
  /** what asked the run to stop, once something has: it then saves a checkpoint and returns */
  readonly received: string | null;
  /** called when the steps start: the moment a stop begins to need a checkpoint */
  listen?(): void;
  /** resolves when the next step may run (a paused run is held here between steps) */
  held?(): Promise<void>;
}

export interface TrainOptions {
  stage: 1 | 2 | 3;
  /** where the run's checkpoints, log and samples go (and a resumed run's checkpoints are) */
  store: RunStore;
  /** where its images, word table and earlier-stage checkpoint come from */
  sources: TrainSources;
  /** continue the run the store holds, from its newest checkpoint */
  resume: boolean;
  /**
   * train a LoRA adapter on this frozen base instead of the model's weights (deno task
   * train:lora; `stage` is then the base model's, 1 or 2, and the config's model its model)
   */
  lora?: LoraTraining;
  /** checkpoints of this run to keep (0: all) */
  keep: number;
  /** write sample grids */
  grid: boolean;
  /** how many images a sample grid has (default 64: the 8×8 grid) */
  gridSize?: number;
  stop: RunControl;
  /** what the run says: "final" lines stay; a "log" line (the loss) may be overwritten by the
   * next on a terminal and is printed elsewhere; "progress" is shown on a terminal only */
  report: (line: string, kind?: ReportKind) => void;
}

export type ReportKind = "final" | "log" | "progress";

export interface TrainResult {
  step: number;
  /** what stopped the run early (a signal's name), or null when it reached its last step */
  interrupted: string | null;
  /** steps skipped for a non-finite loss (train.on_nonfinite: skip) */
  skipped: number;
}

/** Everything a run holds between steps. */
interface Run {
  cfg: Config;
  o: TrainOptions;
  mc: ModelConfig;
  store: RunStore;
  data: TrainingData;
  schedule: Schedule;
  model: PixArt;
  /** a LoRA run's adapter, applied to `model`, whose own weights are then frozen */
  lora: Lora | null;
  /** the weights the optimiser updates: the model's, or the adapter's */
  trained: Params;
  opt: Adam;
  ema: Ema | null;
  /** the EMA of `trained`, under the same names (sampling and checkpoints read them) */
  emaParams: Params | null;
  batcher: Batcher;
  /** the class balance the batcher draws with now (a phase may change it) */
  balancePower: number;
  watch: FiniteWatch;
  lossSum: ReturnType<typeof empty>;
  step: number;
  /** the newest checkpoint written, for the divergence message */
  lastGood: string | null;
  skipped: number;
  window: { steps: number; sum: number; n: number; t0: number; start: number };
  evaluator: Evaluator | null;
}

/** Trains `cfg` at `o.stage` into `o.store`; the store stays open (its owner closes it). */
export async function train(cfg: Config, o: TrainOptions): Promise<TrainResult> {
  let run: Run | null = null;
  try {
    run = await start(cfg, o);
    o.stop.listen?.();
    const tc = cfg.train, firstStep = run.step;
    let previous: Promise<void> = Promise.resolve();
    while (run.step < tc.steps && !o.stop.received) {
      if (o.stop.held) {
        await o.stop.held();
        if (o.stop.received) break;
      }
      // written at the first step taken: a run that takes none leaves its record as it was
      if (run.step === firstStep) o.store.writeConfig({ ...configDocument(cfg), model: run.mc });
      await step(run);
      // the GPU runs this step while the next is recorded; waiting for the one before keeps it
      // at most a step behind and turns the event loop, so a signal is acted on within a step
      const current = submitted();
      await previous;
      previous = current;
      if (run.step % tc.log_every === 0 || run.step === tc.steps) await logWindow(run);
      if (tc.eval_every > 0 && run.step % tc.eval_every === 0) await evaluate(run);
      const saveNow = tc.save_every > 0 && run.step % tc.save_every === 0;
      const gridNow = o.grid && tc.sample_every > 0 && run.step % tc.sample_every === 0;
      if (run.step < tc.steps) {
        if (saveNow) await checkpoint(run, gridNow);
        else if (gridNow) {
          await stopIfDiverged(run); // as a save would: no grid of weights gone non-finite
          await sampleGrid(run);
        }
      }
    }
    // a run that took no step leaves its newest checkpoint as it was: rewritten, it would record
    // this invocation's config and data as the ones its weights were trained with
    const trained = run.step > firstStep;
    if (o.stop.received) {
      o.report(
        `interrupted (${o.stop.received}) at step ${run.step}` +
          (trained ? ": saving a checkpoint" : ""),
      );
    }
    await logWindow(run);
    if (trained) await checkpoint(run, o.grid && !o.stop.received);
    else {
      o.report(
        `no step taken (step ${run.step} of ${tc.steps}): no checkpoint written` +
          (o.stop.received ? "" : `; to train on, raise --steps past ${tc.steps}`),
      );
    }
    return { step: run.step, interrupted: o.stop.received, skipped: run.skipped };
  } finally {
    if (run) dispose(run);
  }
}

// ---------------------------------------------------------------------------------------------
// the parts

/** Data, model (fresh, resumed or from the earlier stage), optimiser, EMA, batcher. */
async function start(cfg: Config, o: TrainOptions): Promise<Run> {
  const tc = cfg.train;
  const store = o.store;
  const mc: ModelConfig = { ...cfg.model, stage: modelStageOf(o.stage) };
  checkTrainingFits(mc, tc.batch_size, !o.lora);
  const schedule = configSchedule(cfg.diffusion);
  const words = await o.sources.wordTable(mc);
  const data = await loadData(cfg, mc, o, words);
  if (o.lora) checkBaseClasses(o.lora, data.classNames);
  const newest = store.checkpoints().at(-1) ?? null;
  const { model, lora, resumed } = o.lora
    ? await loraWeights(cfg, mc, o.lora, resumedAdapter(o, newest), words, (l) => o.report(l))
    : { ...weights(cfg, mc, o, newest, words), lora: null };
  // what holds GPU memory, freed if the start fails (a page may try again, and again)
  const owned: { dispose(): void }[] = [model, ...(lora ? [lora] : [])];
  const own = <T extends { dispose(): void } | null>(x: T): T => (x && owned.push(x), x);
  try {
    const trained = lora ? lora.params : model.params;
    const step = resumed?.step ?? 0;
    const opt = own(optimizer(cfg, trained, resumed, o.report, startOverHint(o)));
    const { ema, emaParams } = emaOf(cfg, trained, resumed);
    own(ema);
    const evaluation = o.sources.evaluation?.(cfg, mc) ?? null;
    await curate(cfg, o, data, evaluation);
    const batcher = batcherAt(cfg, data, step, resumed, o.report, startOverHint(o));
    const evaluator = await evaluatorOf(cfg, data, schedule, evaluation, o.report);
    if (evaluator?.dispose) own({ dispose: () => evaluator.dispose!() });

    o.report(
      `${o.lora ? "LoRA" : `stage ${o.stage}`}: ${trained.count().toLocaleString()} parameters, ` +
        `${data.train.length} training images, batch ${tc.batch_size}, steps ${step}/${tc.steps}, ` +
        `adapter ${deviceInfo().adapter}`,
    );
    if (resumed) {
      const dropped = store.trimLog(step);
      if (dropped) o.report(`dropped ${dropped} log records after step ${step} (redone now)`);
    }
    const lossSum = own(empty([1]).keep());
    zero(lossSum);
    const watch = own(new FiniteWatch());
    const run: Run = {
      cfg,
      o,
      mc,
      store,
      data,
      schedule,
      model,
      lora,
      trained,
      opt,
      ema,
      emaParams,
      batcher,
      balancePower: configAt(cfg, step).data.balance_power,
      watch,
      lossSum,
      step,
      lastGood: newest,
      skipped: 0,
      window: { steps: 0, sum: 0, n: 0, t0: performance.now(), start: step },
      evaluator,
    };
    await compileStep(run);
    run.window.t0 = performance.now();
    return run;
  } catch (e) {
    for (const x of owned.reverse()) x.dispose();
    throw e;
  }
}

/** The training images at the model's size, read by the run's sources. */
function loadData(
  cfg: Config,
  mc: ModelConfig,
  o: TrainOptions,
  words: WordTable | null,
): Promise<TrainingData> {
  const tokenizeCaption = words
    ? (p: string[]) => tokenizeWords(p, words, mc.text_len)
    : (p: string[]) => tokenize(p, mc.text_len);
  return TrainingData.load(
    cfg,
    mc,
    o.stage,
    (source, r) => o.sources.readImages(source, r),
    tokenizeCaption,
    (l) => o.report(l),
  );
}

/** The adapter --resume continues from (a one-line error without one), or null for a new run. */
function resumedAdapter(
  o: TrainOptions,
  newest: string | null,
): { name: string; contents: LoraContents } | null {
  if (!o.resume) return null;
  if (!newest) throw nothingToResume(o);
  const file = o.store.readCheckpointFile(newest);
  return { name: newest, contents: loraContents(file, newest, modelConfigFromJson) };
}

/**
 * Where the weights come from: the run's newest checkpoint (--resume), the earlier stage's
 * (stages 2 and 3), or the initialisation (stage 1, or train.from_scratch).
 */
function weights(
  cfg: Config,
  mc: ModelConfig,
  o: TrainOptions,
  newest: string | null,
  words: WordTable | null,
): { model: PixArt; resumed: Resumed | null } {
  const tc = cfg.train;
  if (o.resume) {
    if (!newest) throw nothingToResume(o);
    const from = {
      ck: checkpointContents(o.store.readCheckpointFile(newest), newest),
      name: newest,
    };
    const { ck, model } = resumeFrom(from, o.stage, mc, cfg.diffusion, words);
    o.report(`resuming '${newest}' at step ${ck.step}`);
    const changed = resumeSettingsNote(ck.metadata.train_config, cfg, ck.step);
    if (changed) o.report(changed);
    return { model, resumed: ck };
  }
  const model = PixArt.init(mc, tc.seed, words);
  if (o.stage === 1 && (tc.init_from || tc.init_fresh || tc.init_ema)) {
    o.report(
      "note: stage 1 starts from initialisation: the config's train.init_from, init_fresh and " +
        "init_ema are for stages 2 and 3, and not used",
    );
  }
  if (o.stage > 1 && tc.from_scratch) {
    o.report(`stage ${o.stage} starts from initialisation (train.from_scratch)`);
  } else if (o.stage > 1) {
    const stage = o.stage as 2 | 3;
    const from = o.sources.earlierStage(stage);
    initFromEarlierStage(model, from, stage, (l) => o.report(l), tc.init_fresh ?? [], tc.init_ema);
    const before = checkpointDiffusion(from.ck.metadata).prediction;
    if (before !== cfg.diffusion.prediction) {
      // allowed (a stage may change what it predicts) but never silent: the output layer's
      // weights then start out computing the other quantity
      o.report(
        `  '${from.name}' predicts ${before}, this stage ${cfg.diffusion.prediction}: its output ` +
          `layer starts from weights trained for the other target`,
      );
    }
    const split = otherSplit(from.ck.metadata.train_config, cfg);
    if (split) {
      o.report(
        `note: '${from.name}' held out images by ${split}: this stage's evaluations may score ` +
          `images it trained on`,
      );
    }
  }
  return { model, resumed: null };
}

/**
 * How an earlier stage's held-out split differs from this config's ("train.seed 0, not 1"), or
 * null: the same source, holdout fraction and seed hold out the same images (io/image_set.ts).
 */
function otherSplit(recorded: string | undefined, cfg: Config): string | null {
  if (!recorded) return null;
  let was: { data?: { source?: unknown; holdout?: unknown }; train?: { seed?: unknown } };
  try {
    was = JSON.parse(recorded);
  } catch {
    return null;
  }
  const pairs: [string, unknown, unknown][] = [
    ["data.source", was.data?.source, cfg.data.source],
    ["data.holdout", was.data?.holdout, cfg.data.holdout],
    ["train.seed", was.train?.seed, cfg.train.seed],
  ];
  const diff = pairs.filter(([, a, b]) => a !== undefined && a !== b);
  return diff.length ? diff.map(([k, a, b]) => `${k} ${a}, not ${b}`).join(", ") : null;
}

/** --resume on a folder without a checkpoint. */
function nothingToResume(o: TrainOptions): Error {
  return new Error(
    `--resume: no checkpoint in ${o.store.where} to resume from: drop --resume to start the run`,
  );
}

/** How to start over from a run that cannot be resumed, for the message that refuses it. */
function startOverHint(o: TrainOptions): string {
  if (o.lora) return "start a new train:lora run in another --out";
  if (o.stage === 1) return "start a new run in another --out (stage 1 starts from initialisation)";
  return "start a new run from its weights with --init-from";
}

/** AdamW over the trained weights on the config's learning-rate curve, its moments restored on resume. */
function optimizer(
  cfg: Config,
  trained: Params,
  resumed: Resumed | null,
  report: TrainOptions["report"],
  startOver: string,
): Adam {
  trained.requireGrad(true);
  for (const note of lrNotes(cfg)) report(note);
  const names = trained.names();
  const m = names.map((n) => resumed?.optim.get(`m.${n}`));
  const v = names.map((n) => resumed?.optim.get(`v.${n}`));
  // without its moments Adam would restart at step 1, and the learning-rate curve with it
  const missing = names.find((_, k) => !m[k] || !v[k]);
  if (resumed && missing !== undefined) {
    throw new Error(
      `--resume: the checkpoint has no optimiser state for '${missing}' (Adam's moments): ` +
        `it was not written by this run; ${startOver}`,
    );
  }
  const opt = optimizerFor(trained.tensors(), cfg);
  if (resumed) {
    opt.loadState({ step: resumed.step, m: m as Float32Array[], v: v as Float32Array[] });
  }
  return opt;
}

/** The EMA copy of the trained weights (restored on resume), and a view of it under their names. */
function emaOf(
  cfg: Config,
  trained: Params,
  resumed: Resumed | null,
): { ema: Ema | null; emaParams: Params | null } {
  if (!(cfg.train.ema_decay > 0)) return { ema: null, emaParams: null };
  const names = trained.names();
  const ema = new Ema(
    trained.tensors(),
    cfg.train.ema_decay,
    names.map((n) => resumed?.ema?.get(n)),
  );
  const emaParams = new Params();
  names.forEach((n, k) => emaParams.set(n, ema.tensors[k]));
  return { ema, emaParams };
}

/** Stage 3 fine-tunes on a curated subset (the same filter on resume, so the data order holds). */
async function curate(
  cfg: Config,
  o: TrainOptions,
  data: TrainingData,
  evaluation: RunEvaluation | null,
): Promise<void> {
  if (o.stage !== 3 && cfg.data.min_score > 0) {
    o.report(
      `note: data.min_score ${cfg.data.min_score} filters stage 3's data; stage ${o.stage} ` +
        `trains on every image`,
    );
  }
  if (!(o.stage === 3 && cfg.data.min_score > 0)) return;
  if (!evaluation) {
    throw new Error(
      "data.min_score filters with the evaluation classifier, which is not available here: " +
        "set data.min_score to 0",
    );
  }
  await evaluation.curate(data);
}

/** The evaluation every train.eval_every steps, or null (train/evaluation.ts chooses it). */
async function evaluatorOf(
  cfg: Config,
  data: TrainingData,
  schedule: Schedule,
  evaluation: RunEvaluation | null,
  report: TrainOptions["report"],
): Promise<Evaluator | null> {
  if (evaluation && cfg.train.eval_every > 0 && data.heldOut.length < 2) {
    report(
      `note: train.eval_every ${cfg.train.eval_every} is not used: the evaluation needs at least ` +
        `2 held-out images and data.holdout ${cfg.data.holdout} keeps ${data.heldOut.length}; ` +
        `raise data.holdout, or set train.eval_every 0`,
    );
  }
  if (!(evaluation && cfg.train.eval_every > 0 && data.heldOut.length >= 2)) return null;
  return await evaluation.evaluator(data, schedule);
}

/** The batcher at `step`: the saved data order on resume, the class balance in force then. */
function batcherAt(
  cfg: Config,
  data: TrainingData,
  step: number,
  resumed: Resumed | null,
  report: TrainOptions["report"],
  startOver: string,
): Batcher {
  let state: BatcherState | undefined = resumed?.metadata.data_state
    ? JSON.parse(resumed.metadata.data_state)
    : undefined;
  if (resumed && !sameTrainingSet(resumed.metadata, data, state, report, startOver) && state) {
    state = { epoch: state.epoch + 1, index: 0 }; // the saved position means nothing here
  }
  return balancedBatcher(cfg, data, configAt(cfg, step).data.balance_power, state, report);
}

/**
 * A resumed run's classes must be the ones it trained on: another class list would give the class
 * embedding's rows other meanings. Another training set of the same classes is allowed (the page
 * goes on with its bundled digits from a command-line run on all of them) and said; then the data
 * order starts a new epoch, as the saved position falls on other images or past the end. Whether
 * the set is the run's: its count of training images (recorded since this came in), else whether
 * the saved position fits.
 */
function sameTrainingSet(
  metadata: Record<string, string>,
  data: TrainingData,
  state: BatcherState | undefined,
  report: TrainOptions["report"],
  startOver: string,
): boolean {
  const was = checkpointClassNames(metadata, "the resumed checkpoint");
  const now = data.classNames ?? null;
  if (JSON.stringify(was) !== JSON.stringify(now)) {
    const n = (c: readonly string[] | null) => (c ? `${c.length} classes` : "no classes");
    throw new Error(
      `--resume: the data has ${n(now)} where the run trained on ${n(was)}` +
        `${
          was && now ? ` (first difference: '${now.find((c, i) => c !== was[i]) ?? "…"}')` : ""
        }: ` +
        `resume on the run's own data, or ${startOver}`,
    );
  }
  const count = metadata.train_images;
  const same = count !== undefined
    ? Number(count) === data.train.length
    : !state || state.index <= data.train.length;
  if (!same) {
    report(
      `note: the data has ${data.train.length} training images where the run trained on ` +
        `${count ?? "others"}: its data order starts a new epoch over these, so no straight run ` +
        `gives what follows`,
    );
  }
  return same;
}

function balancedBatcher(
  cfg: Config,
  data: TrainingData,
  power: number,
  state: BatcherState | undefined,
  report: TrainOptions["report"],
): Batcher {
  const balance = power > 0 ? classBalanceWeights(data.set.labels, data.train, power) : undefined;
  if (balance) report(describeBalance(data.set.labels, data.train, power));
  return new Batcher(data.train, cfg.train.batch_size, cfg.train.seed, state, balance);
}

/**
 * Compiles the kernels of a training step before the first one (a dry run on a fixed batch: it
 * draws no data and changes no state), with a progress line: on a CPU adapter this is seconds.
 */
async function compileStep(run: Run): Promise<void> {
  const { cfg, mc, data, model } = run;
  const B = cfg.train.batch_size;
  // the first B training images (repeated when fewer), drawn without moving the batcher
  const idx = Int32Array.from({ length: B }, (_, i) => data.train[i % data.train.length]);
  const now = configAt(cfg, run.step);
  const loss = batchLoss(
    now,
    mc,
    model,
    run.schedule,
    drawBatch(now, mc, model, data, run.schedule, idx, run.step),
  );
  const parts = { opt: run.opt, ema: run.ema, lossSum: run.lossSum, watch: run.watch };
  const stats = await warmUp(() => trainStep(loss, run.step, parts), {
    onProgress: (p) =>
      run.o.report(
        `${p.phase === "tune" ? "timing kernels" : "compiling kernels"} ${p.done}/${p.total}`,
        "progress",
      ),
  });
  if (stats.compiled) {
    run.o.report(
      `compiled ${stats.compiled} kernels in ${(stats.ms / 1000).toFixed(1)} s`,
      "progress",
    );
  }
}

/**
 * One step on the next batch: noise levels, condition-dropping and drop-path draws come from the
 * run seed and the step, so a resumed run draws what an uninterrupted one would.
 */
async function step(run: Run): Promise<void> {
  const { cfg, mc, data, schedule, model } = run;
  const now = configAt(cfg, run.step);
  if (now.data.balance_power !== run.balancePower) {
    // a phase changed the class balance: the same position, drawn with the new weights
    run.batcher = balancedBatcher(
      cfg,
      data,
      now.data.balance_power,
      run.batcher.state(),
      (l) => run.o.report(`step ${run.step}: ${l}`),
    );
    run.balancePower = now.data.balance_power;
  }
  const idx = run.batcher.next();
  const loss = batchLoss(
    now,
    mc,
    model,
    schedule,
    drawBatch(now, mc, model, data, schedule, idx, run.step),
  );
  const parts = { opt: run.opt, ema: run.ema, lossSum: run.lossSum, watch: run.watch };
  let applied = true;
  if (cfg.train.on_nonfinite === "skip") {
    applied = await trainStepOrSkip(loss, run.step, { ...parts, watch: null });
    if (!applied) {
      run.skipped++;
      run.o.report(`step ${run.step + 1}: non-finite loss or gradient norm, step skipped`);
    }
  } else trainStep(loss, run.step, parts);
  run.step++;
  // the window's mean loss is over the steps whose loss it summed
  if (applied) run.window.steps++;
}

/** The loss of the steps since the last log line: printed, logged, and checked for divergence. */
async function logWindow(run: Run): Promise<void> {
  const w = run.window;
  if (w.steps === 0) return;
  await stopIfDiverged(run);
  const l = (await run.lossSum.read())[0] / w.steps;
  fill(run.lossSum, 0);
  w.sum += l * w.steps;
  w.n += w.steps;
  w.steps = 0;
  const tc = run.cfg.train;
  const el = (performance.now() - w.t0) / 1000;
  const sps = (run.step - w.start) / el;
  run.o.report(
    `step ${run.step}/${tc.steps} loss ${l.toFixed(4)} avg ${(w.sum / w.n).toFixed(4)} ` +
      `${sps.toFixed(2)} steps/s ETA ${formatDuration((tc.steps - run.step) / sps)}`,
    "log",
  );
  run.store.appendLog({
    step: run.step,
    loss: l,
    lr: run.opt.lrAt(run.step),
    time: el,
    pool_mb: pool.stats.allocatedBytes / 2 ** 20,
    ...(run.skipped ? { skipped: run.skipped } : {}),
  });
}

/**
 * A non-finite loss or gradient norm stops the run (train.on_nonfinite: stop): nothing after it
 * is saved, and the message points at the last checkpoint written before it.
 */
async function stopIfDiverged(run: Run): Promise<void> {
  const bad = await run.watch.firstBadStep();
  if (!bad) return;
  const last = run.lastGood
    ? `the last good checkpoint is '${run.lastGood}' (--resume continues from it)`
    : "no checkpoint was written before it";
  throw new Error(
    `training diverged: the loss or gradient norm was not finite at step ${bad}; ${last}; ` +
      `lower train.lr or set train.on_nonfinite: skip`,
  );
}

/** Samples with the EMA weights and logs their prompt accuracy and FID. */
async function evaluate(run: Run): Promise<void> {
  if (!run.evaluator) return;
  await stopIfDiverged(run);
  const t0 = performance.now();
  const model = samplingModel(run);
  try {
    const { record, line } = await run.evaluator.run(
      model,
      (done, total) =>
        run.o.report(`step ${run.step}: evaluating, ${done}/${total} sampler steps`, "progress"),
    );
    run.store.appendLog({ step: run.step, eval: record });
    run.o.report(
      `step ${run.step}: ${line}, ${((performance.now() - t0) / 1000).toFixed(0)} s`,
    );
  } finally {
    if (model !== run.model) model.dispose();
  }
}

/**
 * Writes checkpoint-<step>.safetensors (weights, EMA, Adam's moments, the data order; atomically,
 * only when every weight is finite), rotates this run's older ones, plots the loss, and with
 * `grid` samples the grid beside it.
 */
async function checkpoint(run: Run, grid: boolean): Promise<void> {
  await stopIfDiverged(run);
  const { store, model, trained, opt, cfg, o } = run;
  const st = await opt.readState();
  const optim = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  trained.names().forEach((n, k) => {
    const shape = trained.get(n).shape;
    optim.set(`m.${n}`, { shape, data: st.m[k] });
    optim.set(`v.${n}`, { shape, data: st.v[k] });
  });
  const name = store.checkpointName(run.step);
  const saved = {
    ema: run.emaParams,
    optim,
    step: run.step,
    metadata: {
      train_config: JSON.stringify(configDocument(cfg)),
      train_stage: String(o.stage),
      data_state: JSON.stringify(run.batcher.state()),
      classes: JSON.stringify(run.data.classNames),
      train_images: String(run.data.train.length),
    },
  };
  const ck = run.lora
    ? await loraCheckpointData(run.lora, saved, name)
    : await checkpointTensors(model, saved, name);
  run.lastGood = await store.writeCheckpoint(run.step, ck, o.keep);
  o.report(`step ${run.step}: saved ${run.lastGood}`);
  try {
    store.plotLog();
  } catch (e) {
    // the plots are a view of the log: a failure to draw them must not end the run
    o.report(`step ${run.step}: the loss plot was not drawn (${(e as Error).message})`);
  }
  if (grid) await sampleGrid(run);
}

/** The sample grid of the EMA weights at this step (8×8 unless gridSize), with its prompts. */
async function sampleGrid(run: Run): Promise<void> {
  const { cfg, mc, o } = run;
  const prompts = gridPrompts(run);
  const model = samplingModel(run);
  const total = (cfg.sample.sampler === "ancestral" ? run.schedule.T : cfg.sample.steps) *
    Math.ceil(prompts.length / 64);
  try {
    const images = await generate(model, run.schedule, prompts, run.data.classNames, {
      sampler: cfg.sample.sampler,
      steps: cfg.sample.steps,
      guidance: cfg.sample.guidance,
      seed: cfg.train.seed,
      batch: 64,
      onProgress: (done) =>
        o.report(`step ${run.step}: sample grid, ${done}/${total} sampler steps`, "progress"),
    });
    const where = await run.store.writeSamples(run.step, {
      images,
      prompts,
      channels: mc.in_channels,
      size: mc.image_size,
    });
    o.report(`step ${run.step}: wrote ${where}`);
  } finally {
    if (model !== run.model) model.dispose();
  }
}

/**
 * The grid's prompts (64 unless gridSize): the digits' fixed grid, a class-conditional set's class
 * names in turn, or captions of training images drawn with the run seed.
 */
function gridPrompts(run: Run): string[] {
  const { data, mc } = run;
  const n = run.o.gridSize ?? 64;
  if (data.classNames.join() === MNIST_WORDS.join() && !data.hasImageCaptions) {
    const lesson = run.o.sources.lessonPrompts();
    return Array.from({ length: n }, (_, i) => lesson[i % lesson.length]);
  }
  if (mc.stage === 1 || !data.hasImageCaptions) {
    return Array.from({ length: n }, (_, i) => data.classNames[i % data.classNames.length]);
  }
  const order = shuffledIndices(data.train.length, mixSeed(run.cfg.train.seed, 0x9e1d));
  return Array.from(
    { length: n },
    (_, i) => data.set.captions![data.train[order[i % order.length]]],
  );
}

/** The model sampling uses: over the EMA weights when there are some (it owns nothing). */
function samplingModel(run: Run): PixArt {
  if (run.lora) return loraSamplingModel(run.model, run.lora, run.emaParams);
  return run.emaParams
    ? PixArt.over(run.model.config, run.emaParams, run.model.wordTable)
    : run.model;
}

function dispose(run: Run): void {
  run.evaluator?.dispose?.();
  run.lossSum.dispose();
  run.watch.dispose();
  run.opt.dispose();
  run.ema?.dispose();
  run.model.dispose();
  run.lora?.dispose();
}
