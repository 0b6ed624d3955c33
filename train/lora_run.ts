// A LoRA run (deno task train:lora): the trainer's loop, schedule, EMA, checkpoints, resume and
// signals, with a low-rank adapter (model/lora.ts) as the only weights it trains, on a frozen base
// model. Its checkpoints are adapter files (the adapter, its EMA, Adam's moments, the data order);
// sampling applies the EMA adapter to the base.

import { checkConfig, type Config } from "../io/config_schema.ts";
import type { WordTable } from "../io/word_table.ts";
import { MNIST_WORDS } from "../io/captions.ts";
import {
  checkpointClassNames,
  type CheckpointContents,
  modelFromCheckpoint,
} from "../model/checkpoint_bytes.ts";
import type { ModelConfig } from "../model/config.ts";
import {
  Lora,
  type LoraBase,
  type LoraContents,
  loraFromContents,
  loraLayers,
  peftName,
  weightsSha256,
} from "../model/lora.ts";
import type { Params } from "../model/params.ts";
import { PixArt } from "../model/pixart.ts";
import { checkpointDiffusion, SCHEDULE_KEYS } from "../diffusion/schedule.ts";
import { resumeSettingsNote } from "./resume_note.ts";

/** Where a LoRA run's base model comes from. */
export interface LoraTraining {
  /** the base model's checkpoint */
  base: CheckpointContents;
  /** how the adapter names its base: the path as the user would type it */
  baseName: string;
}

/** What a resumed run restores besides its weights, by the names of the weights it trains. */
export interface Resumed {
  step: number;
  optim: ReadonlyMap<string, Float32Array>;
  ema: ReadonlyMap<string, Float32Array> | null;
  metadata: Record<string, string>;
}

/**
 * The config of a LoRA run on `base`: the model and the noise schedule are the base's (an adapter
 * cannot change them); a config or --set that names another model key is an error, except
 * model.drop_path, which a fine-tune may set.
 */
export function loraRunConfig(cfg: Config, defaults: Config, lt: LoraTraining): Config {
  const ck = lt.base;
  const { stage: _, ...model } = ck.model;
  for (const k of Object.keys(model) as (keyof typeof model)[]) {
    if (k === "drop_path") continue;
    const set = cfg.model[k], base = model[k];
    if (set !== defaults.model[k] && set !== base) {
      throw new Error(
        `train:lora takes the model from its base '${lt.baseName}' (model.${k} = ${base}): ` +
          `drop model.${k} = ${set} from the config`,
      );
    }
  }
  const dropPath = cfg.model.drop_path !== defaults.model.drop_path
    ? cfg.model.drop_path
    : model.drop_path;
  const diffusion = { ...cfg.diffusion };
  const trained = checkpointDiffusion(ck.metadata, `checkpoint '${lt.baseName}'`);
  for (const k of SCHEDULE_KEYS) (diffusion as Record<string, unknown>)[k] = trained[k];
  const run = { ...cfg, model: { ...model, drop_path: dropPath }, diffusion };
  // the keys that depend on the model (data.truncate_captions, sample.steps against the schedule…)
  // were checked against the config's placeholder model: check them against the base's
  checkConfig(run, (m) => {
    throw new Error(`with the model of the base '${lt.baseName}': ${m}`);
  });
  return run;
}

/**
 * The base model, frozen — its EMA weights when it has them, the weights sampling uses — with an
 * adapter applied: fresh (train.seed), or `resume`'s (the run's newest checkpoint), which must be
 * of the same base and the same lora settings.
 */
export async function loraWeights(
  cfg: Config,
  mc: ModelConfig,
  lt: LoraTraining,
  resume: { name: string; contents: LoraContents } | null,
  words: WordTable | null,
  report: (line: string) => void,
): Promise<{ model: PixArt; lora: Lora; resumed: Resumed | null }> {
  const ck = lt.base;
  const ema = !!ck.ema;
  const model = modelFromCheckpoint(ck, lt.baseName, ema, words);
  try {
    for (const k of Object.keys(mc) as (keyof ModelConfig)[]) {
      if (k !== "drop_path" && mc[k] !== ck.model[k]) {
        throw new Error(`'${lt.baseName}' has model.${k} = ${ck.model[k]}, the run ${mc[k]}`);
      }
    }
    model.params.requireGrad(false);
    const base: LoraBase = {
      sha256: await weightsSha256(ck.model, ema ? ck.ema! : ck.params),
      name: lt.baseName,
      weights: ema || ck.metadata.weights === "ema" ? "ema" : "raw",
      config: ck.model,
    };
    const layers = loraLayers(ck.model, cfg.lora.targets);
    for (const t of layers.unmatched) report(`lora.targets: '${t}' names no layer of this model`);
    let lora: Lora, resumed: Resumed | null = null;
    if (resume) {
      const lc = resume.contents;
      checkSameRun(lc, resume.name, base, cfg, layers.map((l) => l.path));
      lora = loraFromContents(lc, true);
      report(`resuming '${resume.name}' at step ${lc.step}`);
      const changed = resumeSettingsNote(lc.metadata.train_config, cfg, lc.step);
      if (changed) report(changed);
      lora.params.requireGrad(true);
      resumed = { step: lc.step, optim: lc.optim, ema: emaByName(lc), metadata: lc.metadata };
    } else lora = Lora.init(cfg.lora, cfg.train.seed, base);
    model.lora = [{ lora, scale: 1 }];
    const trained = lora.params.count(), frozen = model.params.count();
    report(
      `LoRA rank ${lora.rank}, alpha ${lora.alpha} on ${lora.layers.length} layers of ` +
        `'${lt.baseName}' (${base.weights} weights): ${trained.toLocaleString()} trained ` +
        `parameters, ${frozen.toLocaleString()} frozen (${(100 * trained / frozen).toFixed(1)}%)`,
    );
    return { model, lora, resumed };
  } catch (e) {
    model.dispose();
    throw e;
  }
}

/**
 * A class-conditional base reads a class by its row of the class embedding: an adapter trained on
 * a folder whose classes are others, or in another order, would train one class's row under
 * another's name. (Sampling reads the names from the base; one without names is the digits'.)
 */
export function checkBaseClasses(lt: LoraTraining, classNames: readonly string[]): void {
  if (lt.base.model.stage !== 1) return;
  const base = checkpointClassNames(lt.base.metadata, lt.baseName) ?? MNIST_WORDS;
  if (JSON.stringify(base) === JSON.stringify(classNames)) return;
  const list = (c: readonly string[]) =>
    c.length > 6 ? `${c.slice(0, 6).join(", ")}, … (${c.length})` : c.join(", ");
  throw new Error(
    `the data's classes (${list(classNames)}) are not the class-conditional base '` +
      `${lt.baseName}''s (${list(base)}) in its order: an adapter trains the base's class rows, ` +
      `so give data with exactly the base's classes`,
  );
}

/** A resumed adapter must be this run's: the same base weights and the same lora settings. */
function checkSameRun(
  lc: LoraContents,
  path: string,
  base: LoraBase,
  cfg: Config,
  layers: string[],
): void {
  if (lc.base.sha256 !== base.sha256) {
    throw new Error(
      `--resume: '${path}' was trained on '${lc.base.name}', not on these weights of ` +
        `'${base.name}': pass the base it was trained on`,
    );
  }
  const same = lc.rank === cfg.lora.rank && lc.alpha === cfg.lora.alpha &&
    lc.layers.map((l) => l.path).join() === layers.join();
  if (!same) {
    throw new Error(
      `--resume: '${path}' is an adapter of rank ${lc.rank}, alpha ${lc.alpha} on ` +
        `${lc.layers.length} layers; the config says rank ${cfg.lora.rank}, alpha ` +
        `${cfg.lora.alpha} on ${layers.length}: use the same config to resume`,
    );
  }
}

/** A checkpoint's EMA adapter by its tensors' PEFT names (as the optimiser names them). */
function emaByName(lc: LoraContents): Map<string, Float32Array> | null {
  if (!lc.ema) return null;
  const out = new Map<string, Float32Array>();
  for (const [path, p] of lc.ema) {
    out.set(peftName(path, "A"), p.A);
    out.set(peftName(path, "B"), p.B);
  }
  return out;
}

/** The base with the EMA adapter applied (it owns neither), for sampling grids and evaluations. */
export function loraSamplingModel(model: PixArt, lora: Lora, emaParams: Params | null): PixArt {
  const m = PixArt.over(model.config, model.params, model.wordTable);
  m.halfExact = model.halfExact;
  const weights = emaParams
    ? new Lora(lora.rank, lora.alpha, lora.layers, emaParams, lora.base)
    : lora;
  m.lora = [{ lora: weights, scale: 1 }];
  return m;
}
