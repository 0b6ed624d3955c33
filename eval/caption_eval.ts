// Does the model draw the image a caption names? The evaluation of a captioned image folder (the
// emoji set: 3,786 captions, one per image), where no digit classifier applies. Its instrument
// is a classifier trained with this engine on one of the folder's columns (eval/classifier_cache.ts;
// for the emoji set the 99 subcategories), and on a fixed, seeded set of training captions that
// covers every category it scores:
//
//   accuracy, top5_accuracy   share of samples the classifier puts in the caption's class
//                             (first guess; among its five likeliest)
//   category_accuracy         share whose predicted class lies in the caption's category (the
//                             `category` column; null when the folder has none)
//   recall_at_1, recall_at_5  share whose nearest training image in the classifier's feature
//                             space carries the prompted caption (the nearest; any of the 5
//                             nearest): does the sample show *this* image, not just its class?
//   fid, fid_floor            FID on the classifier's features against held-out real images,
//                             beside the real-vs-real FID at the same count (eval/prompt_eval.ts)
//   recall_at_1_real,         recall of the captions' own images moved by one pixel: what a
//   recall_at_5_real          faithful drawing scores, beside the model's recall
//
// Neighbours are ranked by cosine similarity of the penultimate (ReLU) features: their length
// grows with how strongly the network responds at all — contrast, saturation, how sure it is —
// while their direction says which patterns it sees, and "which image is this?" is a question
// about the second. On the emoji set the two agree closely: training images moved by a pixel
// (movedByOnePixel) find themselves 92.3% of the time by cosine, 92.0% by Euclidean distance;
// held-out images' nearest training image has their subcategory 72.6% and 72.8% of the time.
//
// The captions come from the diffusion trainer's training split, so the held-out images stay
// unseen and serve as the FID reference. Each category gets captions in proportion to its share
// of the training captions, at least one each: the reference is a random draw of the data, so a
// category-balanced draw would be scored for its mix of categories rather than its drawing.
//
// Use, once per run and once per evaluation (a trainer's periodic evaluation as well):
//
//   const ref = await prepareCaptionEval("data/emoji", {
//     channels: 3, holdout: 0.1, splitSeed: 0, captions: 100, perCaption: 4 });
//   const { result, images, prompts } = await evaluateCaptions(model, schedule, ref, {
//     sampler: "dpm-solver", steps: 20, guidance: 2.5, seed: 0 });
//   ref.dispose();
//
// `result` is plain JSON (CaptionEvalResult); `images` holds the samples caption-major
// ([captions × perCaption, C, S, S]); `prompts` lists the captions in that order.
// scoreCaptionSamples scores images drawn some other way for the same captions.

import { generate, type GenerateOptions } from "../diffusion/generate.ts";
import type { Schedule } from "../diffusion/schedule.ts";
import { DEFAULT_CONFIG } from "../io/config.ts";
import { loadSource } from "../io/data.ts";
import { checkCaptionLengths } from "../io/caption_length.ts";
import { normalizePrompt } from "../model/tokenizer.ts";
import { gatherBatch, type ImageSet, prepareImages, rowOf, splitHoldout } from "../io/image_set.ts";
import { mulberry32, shuffleInPlace } from "../kernels/host_random.ts";
import { columnClasses } from "../io/image_folder.ts";
import type { PixArt } from "../model/pixart.ts";
import type { Classifier } from "./classifier.ts";
import {
  evalClassColumn,
  loadOrTrainClassifier,
  type LoadOrTrainOptions,
  SPLIT_BY_PICTURE,
} from "./classifier_cache.ts";
import { augmentBatch } from "./classifier_training.ts";
import {
  CLASSIFIER_SIZE,
  evalSampling,
  type RealReference,
  realReference,
  sampleFid,
  type SamplingSettings,
  samplingSettings,
  toClassifierSize,
} from "./prompt_eval.ts";

/** The classifier's class column when none is named and the folder has it (the emoji set's). */
export const PREFERRED_LABEL_FIELD = "subcategory";
/** The column of the coarser grouping reported beside the classes, when the folder has it. */
export const CATEGORY_FIELD = "category";

/** One caption of the evaluation, with the class and category of its image. */
export interface EvalCaption {
  caption: string;
  /** its image's class (the classifier's column) */
  label: number;
  /** its image's category (the category column; the class when there is none) */
  category: number;
  /** the index of its image in the set (the first one drawn, if several share the caption) */
  image: number;
}

// ---------------------------------------------------------------------------------------------
// the evaluation captions

/**
 * How many of `count` items each group gets: at least one for each group that has any, at most
 * what it has, the rest in proportion to what each has (largest remainder first; ties to the
 * lower group).
 */
export function allocate(available: readonly number[], count: number): number[] {
  const total = available.reduce((s, a) => s + a, 0);
  const groups = available.filter((a) => a > 0).length;
  if (count >= total) return [...available];
  if (count < groups) {
    throw new Error(
      `${count} evaluation captions cannot cover ${groups} categories: ask for at least ${groups}`,
    );
  }
  const q = available.map((a) => (a > 0 ? 1 : 0));
  for (let left = count - groups; left > 0; left--) {
    let best = -1, bestDeficit = -Infinity;
    available.forEach((a, g) => {
      const deficit = (count * a) / total - q[g];
      if (q[g] < a && deficit > bestDeficit) [best, bestDeficit] = [g, deficit];
    });
    q[best]++;
  }
  return q;
}

/**
 * `count` distinct captions of the training images `train`, drawn with `seed` and spread over
 * the groups as `allocate` says; listed group by group, in draw order within each. The draw
 * depends only on the captions, groups, split, count and seed. With `evenClasses`, a group's
 * captions go round its classes in turn (each class's first draw, then each one's second, …), so
 * a category of many people and few activities is not scored mostly on its largest class.
 */
export function drawEvalCaptions(
  captions: readonly string[],
  labels: ArrayLike<number>,
  groups: ArrayLike<number>,
  numGroups: number,
  train: ArrayLike<number>,
  count: number,
  seed: number,
  evenClasses = false,
): EvalCaption[] {
  const order = shuffleInPlace(Int32Array.from(train), mulberry32(seed));
  let byGroup: number[][] = Array.from({ length: numGroups }, () => []);
  const seen = new Set<string>();
  for (const i of order) {
    if (seen.has(captions[i])) continue;
    seen.add(captions[i]);
    byGroup[groups[i]].push(i);
  }
  if (evenClasses) byGroup = byGroup.map((list) => roundRobin(list, labels));
  const quota = allocate(byGroup.map((g) => g.length), count);
  return byGroup.flatMap((list, g) =>
    list.slice(0, quota[g]).map((i) => ({
      caption: captions[i],
      label: labels[i],
      category: g,
      image: i,
    }))
  );
}

/** `list` reordered to take one of each class in turn, keeping the order within each class. */
function roundRobin(list: readonly number[], labels: ArrayLike<number>): number[] {
  const byClass = new Map<number, number[]>();
  for (const i of list) {
    const l = labels[i];
    if (!byClass.has(l)) byClass.set(l, []);
    byClass.get(l)!.push(i);
  }
  const queues = [...byClass.values()];
  const out: number[] = [];
  for (let k = 0; out.length < list.length; k++) {
    for (const q of queues) if (k < q.length) out.push(q[k]);
  }
  return out;
}

/**
 * Each class's category from per-image classes and categories: a one-line error when a class
 * spans several categories (the category of a predicted class would then be ambiguous).
 */
export function categoryOfLabels(
  labels: ArrayLike<number>,
  categories: ArrayLike<number>,
  labelNames: readonly string[],
  categoryNames: readonly string[],
): Int32Array {
  const out = new Int32Array(labelNames.length).fill(-1);
  for (let i = 0; i < labels.length; i++) {
    const l = labels[i], c = categories[i];
    if (out[l] >= 0 && out[l] !== c) {
      throw new Error(
        `class '${labelNames[l]}' lies in categories '${categoryNames[out[l]]}' and ` +
          `'${categoryNames[c]}': category accuracy needs one category per class`,
      );
    }
    out[l] = c;
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// nearest training images

/**
 * The k keys most similar to each query by cosine similarity, most similar first (ties to the
 * lower index): [nq, k] indices into the keys. A zero vector is similar to nothing (0).
 */
export function nearestByCosine(
  queries: Float32Array,
  nq: number,
  keys: Float32Array,
  nk: number,
  dim: number,
  k: number,
): Int32Array {
  if (k > nk) throw new Error(`${k} nearest neighbours asked of ${nk} training images`);
  const unit = (v: Float32Array, n: number) => {
    const out = new Float32Array(n * dim);
    for (let i = 0; i < n; i++) {
      let s = 0;
      for (let j = 0; j < dim; j++) s += v[i * dim + j] ** 2;
      const inv = s > 0 ? 1 / Math.sqrt(s) : 0;
      for (let j = 0; j < dim; j++) out[i * dim + j] = v[i * dim + j] * inv;
    }
    return out;
  };
  const q = unit(queries, nq), key = unit(keys, nk);
  const out = new Int32Array(nq * k);
  const best = new Float64Array(k);
  const idx = new Int32Array(k);
  for (let i = 0; i < nq; i++) {
    best.fill(-Infinity);
    idx.fill(-1);
    const qo = i * dim;
    for (let t = 0; t < nk; t++) {
      let s = 0;
      const ko = t * dim;
      for (let j = 0; j < dim; j++) s += q[qo + j] * key[ko + j];
      if (s <= best[k - 1]) continue; // equal: the earlier key keeps its place
      let p = k - 1;
      while (p > 0 && s > best[p - 1]) {
        best[p] = best[p - 1];
        idx[p] = idx[p - 1];
        p--;
      }
      best[p] = s;
      idx[p] = t;
    }
    out.set(idx, i * k);
  }
  return out;
}

/**
 * For each sample, the rank (0: nearest) of the first of its k nearest training pictures that
 * carries the sample's caption (among the captions of each, `trainCaptions`), or -1 when none of
 * them does. recall@r is the share of ranks in [0, r).
 */
export function captionRanks(
  neighbours: Int32Array,
  k: number,
  sampleCaptions: readonly string[],
  trainCaptions: readonly (readonly string[])[],
): Int32Array {
  return Int32Array.from(sampleCaptions, (caption, i) => {
    for (let r = 0; r < k; r++) {
      if (trainCaptions[neighbours[i * k + r]].includes(caption)) return r;
    }
    return -1;
  });
}

/**
 * Entries `idx` one per picture (the first of each) and the captions each picture carries among
 * them: a picture under several captions is one neighbour to search and one real image to
 * compare with, not a tie with itself that ranks its second caption below its first.
 */
function byPicture(
  set: ImageSet,
  idx: ArrayLike<number>,
): { entries: Int32Array; captions: string[][] } {
  const first = new Map<number, { entry: number; captions: string[] }>();
  for (let j = 0; j < idx.length; j++) {
    const k = idx[j], row = rowOf(set, k), caption = set.captions?.[k] ?? "";
    const p = first.get(row);
    if (p) p.captions.push(caption);
    else first.set(row, { entry: k, captions: [caption] });
  }
  const pictures = [...first.values()];
  return {
    entries: Int32Array.from(pictures, (p) => p.entry),
    captions: pictures.map((p) => p.captions),
  };
}

/** The rank of class `label` among the K probabilities of row i (0: the first guess; ties to the
 * lower class, as an arg-max that keeps the first maximum). */
function rankOfLabel(probs: Float32Array, i: number, K: number, label: number): number {
  const p = probs[i * K + label];
  let rank = 0;
  for (let k = 0; k < K; k++) {
    const v = probs[i * K + k];
    if (v > p || (v === p && k < label)) rank++;
  }
  return rank;
}

/**
 * Copies of images `idx` of a set, each moved by one pixel — right, down, left, up in turn — the
 * uncovered border repeating the edge, as the classifier's training shifts do.
 */
export function movedByOnePixel(set: ImageSet, idx: readonly number[]): Float32Array {
  const C = set.channels, S = set.height, per = C * S * S;
  const out = new Float32Array(idx.length * per);
  // augmentBatch draws a move v ∈ {-1, 0, 1} at shift 1 as floor(3r) − 1
  const draw = (v: number) => (v + 1.5) / 3;
  idx.forEach((i, j) => {
    const [dx, dy] = [[1, 0], [0, 1], [-1, 0], [0, -1]][j % 4];
    const r = [draw(dx), draw(dy)];
    let k = 0;
    const dst = out.subarray(j * per, (j + 1) * per);
    augmentBatch(set.images, [rowOf(set, i)], C, S, 1, false, () => r[k++], dst, true);
  });
  return out;
}

// ---------------------------------------------------------------------------------------------
// setting up

export interface CaptionEvalSetupOptions {
  /** the model's image channels (1 or 3): real images are read with as many */
  channels: number;
  /** the diffusion trainer's data.holdout (default 0.1) */
  holdout?: number;
  /** the diffusion trainer's train.seed, which fixes the split (default 0) */
  splitSeed?: number;
  /** the classifier's class column (default: "subcategory" when the folder has it, else
   * `configLabelField`) */
  labelField?: string;
  /** the config's data.label_field (default: the default config's) */
  configLabelField?: string;
  /** the category column (default: "category" when the folder has it and it is not the class
   * column); null: none */
  categoryField?: string | null;
  /** the config's data.skip_bad_images */
  skipBadImages?: boolean;
  /**
   * a byte model trained with data.truncate_captions: its text limit (model.text_len). The
   * captions over it are cut at a word as the trainer cut them, so the model is asked for what it
   * was trained on (uncut, they are over its limit)
   */
  truncateCaptionsTo?: number;
  /** the decoded-image cache (io/image_folder.ts; default: the user's cache folder; null: none) */
  imageCacheDir?: string | null;
  /** how many evaluation captions (default 100) */
  captions?: number;
  /** the seed of their draw (default 0), fixed apart from the sampling seed so that every
   * evaluation asks for the same captions */
  captionSeed?: number;
  /** spread each category's captions evenly over its classes (drawEvalCaptions) */
  evenClasses?: boolean;
  /** samples per caption (default 4); the FID reference holds as many images as there are
   * samples, or all the held-out images when they are fewer */
  perCaption?: number;
  /** the classifier's cache folder, overrides of its recipe and size, verification */
  classifier?: Pick<LoadOrTrainOptions, "cacheDir" | "train" | "network" | "verify">;
  log?: (line: string) => void;
}

/** What evaluateCaptions needs, prepared once: dispose() frees the classifier. */
export interface CaptionEval {
  source: string;
  channels: number;
  classifier: Classifier;
  classifierPath: string;
  /** the classifier's accuracy on the held-out images */
  heldOutAccuracy: number;
  labelField: string;
  labelNames: string[];
  categoryField: string | null;
  /** the groups the captions are spread over and per_category reports: the categories, or
   * the classes when there is no category column */
  groupNames: string[];
  /** each class's category; null without a category column */
  categoryOfLabel: Int32Array | null;
  captions: EvalCaption[];
  perCaption: number;
  real: RealReference;
  /** recall@1 and @5 of each caption's own image moved by one pixel: what a faithful drawing
   * scores, the counterpart of the FID floor */
  realRecall: [number, number];
  /** per caption, 1 when the classifier puts its own image, moved by one pixel, in its class:
   * the class accuracy a faithful drawing would score */
  realHit: Uint8Array;
  /** every training picture's classifier features [trainCaptions.length, featureDim] */
  trainFeatures: Float32Array;
  /** the captions each training picture carries (more than one where a folder repeats it) */
  trainCaptions: string[][];
  featureDim: number;
  dispose(): void;
}

/**
 * Reads the folder, loads or trains its classifier (cached), draws the evaluation captions and
 * computes the FID reference and the training images' features. Every error is one line.
 */
export async function prepareCaptionEval(
  source: string,
  o: CaptionEvalSetupOptions,
): Promise<CaptionEval> {
  const holdout = o.holdout ?? 0.1;
  const splitSeed = o.splitSeed ?? 0;
  const count = o.captions ?? 100;
  const perCaption = o.perCaption ?? 4;
  const log = o.log ?? (() => {});
  if (!Number.isInteger(count) || count < 1) {
    throw new Error(`the number of evaluation captions must be a positive integer, got ${count}`);
  }
  if (!Number.isInteger(perCaption) || perCaption < 1) {
    throw new Error(`samples per caption must be a positive integer, got ${perCaption}`);
  }
  const configLabelField = o.configLabelField ?? DEFAULT_CONFIG.data.label_field;
  const read = { skipBadImages: o.skipBadImages, cacheDir: o.imageCacheDir, log };
  const loaded = await loadSource(source, {
    ...read,
    size: CLASSIFIER_SIZE,
    channels: o.channels,
    labelField: configLabelField,
  });
  if (!loaded.captions || !loaded.columns) {
    throw new Error(`caption evaluation needs an image folder with captions; '${source}' is not`);
  }
  const set: ImageSet & { captions: string[]; columns: Record<string, string | number>[] } =
    o.truncateCaptionsTo === undefined ? loaded as typeof set : checkCaptionLengths(
      loaded,
      o.truncateCaptionsTo,
      { normalize: normalizePrompt, truncate: true, log },
    ) as typeof set;
  const has = (column: string) => set.columns!.some((c) => c[column] !== undefined);
  const labelField = o.labelField ??
    (has(PREFERRED_LABEL_FIELD)
      ? PREFERRED_LABEL_FIELD
      : evalClassColumn(source, configLabelField, log));
  const classes = columnClasses(set, labelField);
  if (!classes) {
    const columns = [...new Set(set.columns.flatMap((c) => Object.keys(c)))].sort();
    throw new Error(
      `data folder ${source} has no '${labelField}' column to train the evaluation classifier ` +
        `on: set ${o.labelField ? "--label-field" : "data.label_field"} to one of its columns ` +
        `(${columns.join(", ") || "it has none"}), or put the images in one subfolder per class`,
    );
  }
  const categoryField = o.categoryField !== undefined
    ? o.categoryField
    : has(CATEGORY_FIELD) && CATEGORY_FIELD !== labelField
    ? CATEGORY_FIELD
    : null;
  const categories = categoryField ? columnClasses(set, categoryField) : null;
  if (categoryField && !categories) {
    throw new Error(`data folder ${source} has no '${categoryField}' column`);
  }
  if (o.evenClasses && !categories) {
    // the groups would be the classes themselves: nothing to spread, the draw unchanged
    throw new Error(
      `--even-classes spreads each category's captions over its classes, and data folder ` +
        `${source} has no category column besides '${labelField}': leave the flag out`,
    );
  }
  const categoryOfLabel = categories
    ? categoryOfLabels(classes.labels, categories.labels, classes.classNames, categories.classNames)
    : null;

  const { classifier, heldOutAccuracy, path } = await loadOrTrainClassifier(source, {
    ...o.classifier,
    holdout,
    splitSeed,
    data: { ...read, channels: o.channels, labelField },
    log,
  });
  try {
    const recorded = classifier.metadata.classes;
    if (recorded !== JSON.stringify(classes.classNames)) {
      throw new Error(
        `classifier ${path} was trained on other '${labelField}' classes than the folder has ` +
          `now: delete it to retrain`,
      );
    }
    // by picture, as the trainer splits (io/image_set.ts): a file under several captions is
    // held out whole. A classifier cached before the split was by picture saw another split
    // wherever a file repeats.
    if (set.rows && classifier.metadata.split !== SPLIT_BY_PICTURE) {
      throw new Error(
        `classifier ${path} was trained on an earlier split of a folder that repeats files ` +
          `(held-out images may have been trained on): delete it to retrain`,
      );
    }
    const { train, holdout: held } = splitHoldout(set.n, holdout, splitSeed, set.rows);
    const groups = categories ?? classes;
    const captions = drawEvalCaptions(
      set.captions,
      classes.labels,
      groups.labels,
      groups.classNames.length,
      train,
      count,
      o.captionSeed ?? 0,
      o.evenClasses ?? false,
    );
    const data = prepareImages(set, CLASSIFIER_SIZE);
    const pictures = byPicture(set, train);
    const real = await realReference(
      classifier,
      data,
      byPicture(set, held).entries,
      pictures.entries,
      captions.length * perCaption,
    );
    const searched = pictures.entries.length;
    const trainImages = gatherBatch(data, pictures.entries).images;
    const { features, featureDim } = await classifier.predict(trainImages, searched);
    const trainCaptions = pictures.captions;
    const moved = await classifier.predict(
      movedByOnePixel(data, captions.map((e) => e.image)),
      captions.length,
    );
    const ranks = captionRanks(
      nearestByCosine(moved.features, captions.length, features, searched, featureDim, 5),
      5,
      captions.map((e) => e.caption),
      trainCaptions,
    );
    const share = (ok: (r: number) => boolean) => ranks.filter(ok).length / ranks.length;
    const K = classes.classNames.length;
    const realHit = Uint8Array.from(
      captions,
      (e, j) => rankOfLabel(moved.probs, j, K, e.label) === 0 ? 1 : 0,
    );
    log(
      `caption evaluation: ${captions.length} captions over ${groups.classNames.length} ` +
        `${categories ? "categories" : "classes"}, ${searched} training pictures to search`,
    );
    return {
      source,
      channels: o.channels,
      classifier,
      classifierPath: path,
      heldOutAccuracy,
      labelField,
      labelNames: classes.classNames,
      categoryField,
      groupNames: groups.classNames,
      categoryOfLabel,
      captions,
      perCaption,
      real,
      realRecall: [share((r) => r === 0), share((r) => r >= 0)],
      realHit,
      trainFeatures: features,
      trainCaptions,
      featureDim,
      dispose: () => classifier.dispose(),
    };
  } catch (e) {
    classifier.dispose();
    throw e;
  }
}

// ---------------------------------------------------------------------------------------------
// scoring

/** Scores of a group of samples (a category, or one caption). */
export interface CaptionScore {
  samples: number;
  accuracy: number;
  /** the same classifier's accuracy on the captions' own images moved by one pixel */
  accuracy_real: number;
  /** null without a category column */
  category_accuracy: number | null;
  recall_at_1: number;
  recall_at_5: number;
}

export interface CaptionEvalResult extends CaptionScore, SamplingSettings {
  captions: number;
  samples_per_caption: number;
  top5_accuracy: number;
  /** mean probability the classifier gives its first guess */
  confidence: number;
  fid: number;
  /** real-vs-real FID at the same count */
  fid_floor: number;
  fid_samples: number;
  /** recall@1 and @5 of the captions' own images moved by one pixel (what a faithful drawing
   * scores) */
  recall_at_1_real: number;
  recall_at_5_real: number;
  /** per category (per class without a category column), in the groups' order */
  per_category: (CaptionScore & { name: string; captions: number })[];
  /** per caption, in the evaluation's order */
  per_caption: (CaptionScore & { caption: string; label: string; category: string })[];
}

export interface CaptionEvalOptions extends Omit<GenerateOptions, "onProgress"> {
  /** samples per caption (default: the setup's) */
  perCaption?: number;
  onProgress?: (done: number, total: number) => void;
}

/** Samples every evaluation caption, classifies and searches the samples, and scores them. */
export async function evaluateCaptions(
  model: PixArt,
  schedule: Schedule,
  ref: CaptionEval,
  o: CaptionEvalOptions,
): Promise<{ result: CaptionEvalResult; images: Float32Array; prompts: string[] }> {
  const c = model.config;
  if (c.stage !== 2) {
    throw new Error("caption evaluation needs a text-conditioned (stage-2) model");
  }
  if (c.in_channels !== ref.channels) {
    throw new Error(
      `the model draws ${c.in_channels} channel(s), the caption evaluation was prepared for ` +
        `${ref.channels}`,
    );
  }
  const per = o.perCaption ?? ref.perCaption;
  const list = ref.captions.map((e) => e.caption);
  const prompts = list.flatMap((p) => Array(per).fill(p));
  const images = await generate(model, schedule, prompts, [], evalSampling(o));
  const scores = await scoreCaptionSamples(ref, images, per, c.image_size);
  const result: CaptionEvalResult = { ...samplingSettings(o, schedule.T), ...scores };
  return { result, images, prompts: list };
}

/** What scoreCaptionSamples measures: the result less the sampling settings. */
export type CaptionScores = Omit<CaptionEvalResult, keyof SamplingSettings>;

/**
 * Scores images drawn for the evaluation captions: `perCaption` per caption, caption-major,
 * [captions × perCaption, channels, size, size], as a PNG shows them (toClassifierSize).
 */
export async function scoreCaptionSamples(
  ref: CaptionEval,
  images: Float32Array,
  perCaption: number,
  size: number,
): Promise<CaptionScores> {
  const per = perCaption;
  const n = ref.captions.length * per;
  const prompts = ref.captions.flatMap((e) => Array<string>(per).fill(e.caption));
  const { probs, features, featureDim } = await ref.classifier.predict(
    toClassifierSize(images, n, ref.channels, size),
    n,
  );
  const K = ref.labelNames.length;
  const neighbours = nearestByCosine(
    features,
    n,
    ref.trainFeatures,
    ref.trainCaptions.length,
    featureDim,
    5,
  );
  const ranks = captionRanks(neighbours, 5, prompts, ref.trainCaptions);

  // per-sample outcomes, averaged over any group of samples
  const hit = new Uint8Array(n), top5 = new Uint8Array(n), catHit = new Uint8Array(n);
  let confSum = 0;
  for (let i = 0; i < n; i++) {
    const e = ref.captions[Math.floor(i / per)];
    const rank = rankOfLabel(probs, i, K, e.label);
    let best = 0;
    for (let k = 1; k < K; k++) if (probs[i * K + k] > probs[i * K + best]) best = k;
    hit[i] = rank === 0 ? 1 : 0;
    top5[i] = rank < 5 ? 1 : 0;
    catHit[i] = ref.categoryOfLabel && ref.categoryOfLabel[best] === e.category ? 1 : 0;
    confSum += probs[i * K + best];
  }
  const score = (samples: number[]): CaptionScore => {
    const mean = (f: (i: number) => number) =>
      samples.length ? samples.reduce((s, i) => s + f(i), 0) / samples.length : 0;
    return {
      samples: samples.length,
      accuracy: mean((i) => hit[i]),
      accuracy_real: mean((i) => ref.realHit[Math.floor(i / per)]),
      category_accuracy: ref.categoryOfLabel ? mean((i) => catHit[i]) : null,
      recall_at_1: mean((i) => (ranks[i] === 0 ? 1 : 0)),
      recall_at_5: mean((i) => (ranks[i] >= 0 ? 1 : 0)),
    };
  };
  const samplesOf = (captionIdx: number[]) =>
    captionIdx.flatMap((j) => Array.from({ length: per }, (_, k) => j * per + k));
  const all = Array.from({ length: n }, (_, i) => i);
  const fid = sampleFid(features, n, featureDim, ref.real);
  return {
    captions: ref.captions.length,
    samples_per_caption: per,
    ...score(all),
    top5_accuracy: all.reduce((s, i) => s + top5[i], 0) / n,
    confidence: confSum / n,
    fid: fid.fid,
    fid_floor: ref.real.floor,
    fid_samples: fid.count,
    recall_at_1_real: ref.realRecall[0],
    recall_at_5_real: ref.realRecall[1],
    per_category: ref.groupNames.map((name, g) => {
      const idx = ref.captions.flatMap((e, j) => (e.category === g ? [j] : []));
      return { name, captions: idx.length, ...score(samplesOf(idx)) };
    }),
    per_caption: ref.captions.map((e, j) => ({
      caption: e.caption,
      label: ref.labelNames[e.label],
      category: ref.groupNames[e.category],
      ...score(samplesOf([j])),
    })),
  };
}
