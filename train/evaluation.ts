// The trainer's periodic evaluation: quality, not only the loss. Every `train.eval_every` steps the
// EMA weights draw `train.eval_per_prompt` images per evaluation prompt; the evaluation classifier
// scores prompt accuracy and FID against held-out real images (eval/prompt_eval.ts), and the
// result goes into train-log.jsonl beside the losses. Also the quality filter of stage 3
// (data.min_score), which uses the same classifier.

import type { Config } from "../io/config_schema.ts";
import type { Schedule } from "../diffusion/schedule.ts";
import type { ModelConfig } from "../model/config.ts";
import type { Classifier } from "../eval/classifier.ts";
import { evalClassColumn, loadOrTrainClassifier } from "../eval/classifier_cache.ts";
import {
  CLASSIFIER_SIZE,
  evalPrompts,
  evaluatePrompts,
  type RealReference,
  realReference,
} from "../eval/prompt_eval.ts";
import { evaluateCaptions, prepareCaptionEval } from "../eval/caption_eval.ts";
import { captionGap } from "../eval/caption_gap.ts";
import { gatherBatch, pictureCount, rowOf } from "../io/image_set.ts";
import { mulberry32 } from "../kernels/host_random.ts";
import type { TrainingData } from "./data.ts";
import type { Evaluator, RunEvaluation } from "./train_sources.ts";

export type { EvalRecord, Evaluator } from "./train_sources.ts";

/**
 * A run's evaluation from the files of its data source: the stage-3 quality filter and the
 * periodic evaluation share one classifier, trained (or read from its cache) when first needed.
 */
export function fileEvaluation(
  cfg: Config,
  mc: ModelConfig,
  log: (line: string) => void,
): RunEvaluation {
  let classifier: Classifier | null = null;
  const shared = async () => (classifier ??= await runClassifier(cfg, mc, log));
  return {
    // Stage 3 fine-tunes on a curated subset (the same filter on resume, so the data order holds)
    async curate(data) {
      const before = data.train.length;
      const kept = await keepConfident(data, mc, await shared(), cfg.data.min_score);
      log(
        `quality filter (data.min_score ${cfg.data.min_score}): kept ${kept} of ${before} ` +
          `training images`,
      );
    },
    async evaluator(data, schedule) {
      let evaluator: Evaluator;
      if (data.hasImageCaptions && mc.stage === 2) {
        evaluator = await captionEvaluator(cfg, mc, schedule, log);
      } else {
        evaluator = await classPromptEvaluator(cfg, mc, data, schedule, await shared());
      }
      if (mc.stage === 2) evaluator = withCaptionGap(evaluator, data, schedule, cfg.train.seed);
      return evaluator;
    },
  };
}

/** The evaluation classifier of the run's data (trained once and cached in checkpoints/). */
export async function runClassifier(
  cfg: Config,
  mc: ModelConfig,
  log: (line: string) => void,
): Promise<Classifier> {
  const say = (s: string) => log(`eval classifier: ${s}`);
  const { classifier } = await loadOrTrainClassifier(cfg.data.source, {
    holdout: cfg.data.holdout,
    splitSeed: cfg.train.seed,
    data: {
      channels: mc.in_channels,
      labelField: evalClassColumn(cfg.data.source, cfg.data.label_field, say),
      skipBadImages: cfg.data.skip_bad_images,
    },
    log: say,
  });
  return classifier;
}

/** Prompt accuracy and FID over the data's class prompts (digits: words and numerals). */
export async function classPromptEvaluator(
  cfg: Config,
  mc: ModelConfig,
  data: TrainingData,
  schedule: Schedule,
  classifier: Classifier,
): Promise<Evaluator> {
  const at32 = await data.atSize(CLASSIFIER_SIZE, mc);
  const n = evalPrompts(data.classNames).length * cfg.train.eval_per_prompt;
  const real: RealReference = await realReference(
    classifier,
    at32,
    data.heldOut,
    data.sourceTrain,
    n,
  );
  return {
    async run(model, onProgress) {
      const { result } = await evaluatePrompts(
        model,
        schedule,
        classifier,
        real,
        data.classNames,
        {
          sampler: cfg.sample.sampler,
          steps: cfg.sample.steps,
          guidance: cfg.sample.guidance,
          seed: 0,
          perPrompt: cfg.train.eval_per_prompt,
          onProgress,
        },
      );
      // per class only the accuracy, in class order, to keep the log one short line
      const { per_class: perClass, ...summary } = result;
      const per_class_accuracy = perClass.map((c) => Math.round(c.accuracy * 1000) / 1000);
      return {
        record: { ...summary, per_class_accuracy },
        line: `prompt accuracy ${(result.accuracy * 100).toFixed(1)}%, confidence ` +
          `${result.confidence.toFixed(3)}, FID ${result.fid.toFixed(2)} (floor ` +
          `${result.fid_floor.toFixed(2)}) at guidance ${result.guidance}`,
      };
    },
  };
}

/**
 * For a text model of an image folder with captions: label and category accuracy of samples drawn
 * for 100 fixed training captions, caption recall@1/@5 and FID (eval/caption_eval.ts).
 */
export async function captionEvaluator(
  cfg: Config,
  mc: ModelConfig,
  schedule: Schedule,
  log: (line: string) => void,
): Promise<Evaluator & { dispose(): void }> {
  const ref = await prepareCaptionEval(cfg.data.source, {
    channels: mc.in_channels,
    holdout: cfg.data.holdout,
    splitSeed: cfg.train.seed,
    configLabelField: cfg.data.label_field,
    skipBadImages: cfg.data.skip_bad_images,
    ...(cfg.data.truncate_captions && { truncateCaptionsTo: mc.text_len }),
    perCaption: cfg.train.eval_per_prompt,
    log: (s) => log(`eval classifier: ${s}`),
  });
  return {
    async run(model, onProgress) {
      const { result } = await evaluateCaptions(model, schedule, ref, {
        sampler: cfg.sample.sampler,
        steps: cfg.sample.steps,
        guidance: cfg.sample.guidance,
        seed: 0,
        onProgress,
      });
      // the log keeps one short line: the summary and each category's label accuracy
      const { per_caption: _, per_category: perCategory, ...summary } = result;
      const per_category_accuracy = Object.fromEntries(
        perCategory.map((c) => [c.name, Math.round(c.accuracy * 1000) / 1000]),
      );
      const pc = (x: number) => `${(x * 100).toFixed(1)}%`;
      return {
        record: { ...summary, per_category_accuracy },
        line: `label accuracy ${pc(result.accuracy)} (real ${pc(result.accuracy_real)})` +
          (result.category_accuracy === null ? "" : `, category ${pc(result.category_accuracy)}`) +
          `, recall@1 ${pc(result.recall_at_1)}, @5 ${pc(result.recall_at_5)}, FID ` +
          `${result.fid.toFixed(1)} (floor ${result.fid_floor.toFixed(1)}) at guidance ` +
          `${result.guidance}`,
      };
    },
    dispose: () => ref.dispose(),
  };
}

/**
 * The images and captions of the caption gap: up to 128 of data.source's training images, evenly
 * spread (data.extra_sources' are not part of the evaluation), with the captions they train with.
 */
export function captionGapDraw(data: TrainingData, seed: number) {
  const train = data.sourceTrain;
  const k = Math.min(128, train.length);
  const idx = Array.from({ length: k }, (_, i) => train[Math.floor(i * train.length / k)]);
  const rng = mulberry32(seed);
  return { idx, captions: idx.map((i) => data.captionOf(i, rng)) };
}

/**
 * Adds to each of `inner`'s evaluations the caption gap (eval/caption_gap.ts) of up to 128
 * training images, evenly spread over the training split, with the captions they train with.
 */
export function withCaptionGap(
  inner: Evaluator,
  data: TrainingData,
  schedule: Schedule,
  seed: number,
): Evaluator {
  const { idx, captions } = captionGapDraw(data, seed);
  const { images } = gatherBatch(data.set, idx);
  return {
    async run(model, onProgress) {
      const { record, line } = await inner.run(model, onProgress);
      const g = await captionGap(model, schedule, images, captions, { seed });
      return {
        record: { ...record, caption_gap: g },
        line: `${line}, caption gap ${(g.gap * 100).toFixed(1)}% at t = ${g.t}`,
      };
    },
    dispose: () => inner.dispose?.(),
  };
}

/**
 * Stage 3's curated subset (PixArt-α fine-tunes its last stage on high-quality images): keeps the
 * training images to which the evaluation classifier gives at least `minScore` probability of
 * their own label. Returns how many were kept.
 */
export async function keepConfident(
  data: TrainingData,
  mc: ModelConfig,
  classifier: Classifier,
  minScore: number,
): Promise<number> {
  const at32 = await data.atSize(CLASSIFIER_SIZE, mc);
  // each picture scored once, however many entries show it
  const { probs } = await classifier.predict(at32.images, pictureCount(at32));
  const K = classifier.config.numClasses;
  return data.keepOnly((i) => probs[rowOf(at32, i) * K + at32.labels[i]] >= minScore);
}
