// Training the evaluation classifier (eval/classifier.ts): cross-entropy with the engine's one
// training step, AdamW (kernels/optim.ts adamW) with a warm-up and a cosine schedule, random
// shifts (and flips where the classes are mirror-symmetric).

import {
  type AdamOptions,
  adamW,
  crossEntropy,
  empty,
  fill,
  flush,
  intTensor,
  tensor,
  trainStep,
} from "../kernels/mod.ts";

import { Batcher } from "../io/batcher.ts";
import { mixSeed, mulberry32 } from "../kernels/host_random.ts";
import { checkImages, Classifier, type ClassifierConfig, fullConfig } from "./classifier.ts";

export interface TrainClassifierOptions {
  epochs: number;
  batchSize: number;
  /** peak learning rate (Adam), reached after a linear warm-up and then cosine-decayed to 0 */
  lr: number;
  seed: number;
  log?: (s: string) => void;
  /** warm-up steps (default: 3% of the run) */
  warmupSteps?: number;
  /** random translation of each training image by up to this many pixels (default 2) */
  shift?: number;
  /** random horizontal flips (default false: digits are not mirror-symmetric) */
  flip?: boolean;
  /** shifted-in pixels repeat the edge instead of black (default false) */
  edge?: boolean;
  /** AdamW's decoupled weight decay (default 0) */
  weightDecay?: number;
}

/**
 * The classifier's learning-rate schedule as Adam runs it (kernels/optim.ts): a linear warm-up to
 * `peak`, then a cosine to 0 at step `total`.
 */
export function classifierSchedule(
  total: number,
  peak: number,
  warmup: number,
): Pick<AdamOptions, "lr" | "warmupSteps" | "decay"> {
  return {
    lr: peak,
    warmupSteps: warmup,
    decay: warmup < total ? { shape: "cosine", start: warmup, end: total, minLr: 0 } : undefined,
  };
}

/**
 * Copies images [k, C, S, S] into `out`, each translated by (dx, dy) ∈ [−shift, shift]² and
 * mirrored with `flip`, drawn from `rng`. Uncovered pixels get -1 (black, the digits'
 * background), or with `edge` repeat the nearest edge pixel (icons on white, photos).
 */
export function augmentBatch(
  src: Float32Array,
  indices: ArrayLike<number>,
  C: number,
  S: number,
  shift: number,
  flip: boolean,
  rng: () => number,
  out: Float32Array,
  edge = false,
): void {
  const size = C * S * S;
  for (let b = 0; b < indices.length; b++) {
    const dx = shift > 0 ? Math.floor(rng() * (2 * shift + 1)) - shift : 0;
    const dy = shift > 0 ? Math.floor(rng() * (2 * shift + 1)) - shift : 0;
    const mirror = flip && rng() < 0.5;
    const s0 = indices[b] * size, d0 = b * size;
    const clamp = (v: number) => (v < 0 ? 0 : v >= S ? S - 1 : v);
    for (let c = 0; c < C; c++) {
      for (let y = 0; y < S; y++) {
        let sy = y - dy;
        const row = d0 + (c * S + y) * S;
        if (edge) sy = clamp(sy);
        else if (sy < 0 || sy >= S) {
          out.fill(-1, row, row + S);
          continue;
        }
        const srow = s0 + (c * S + sy) * S;
        for (let x = 0; x < S; x++) {
          const sx = (mirror ? S - 1 - x : x) - dx;
          if (edge) out[row + x] = src[srow + clamp(sx)];
          else out[row + x] = sx >= 0 && sx < S ? src[srow + sx] : -1;
        }
      }
    }
  }
}

/**
 * Trains a classifier on images [n, C, S, S] in [-1, 1] with integer labels: cross-entropy, Adam
 * with warm-up and cosine decay, random translations (and flips on request). The result depends
 * only on the data, the config and the options (seed included).
 */
export async function trainClassifier(
  train: { images: Float32Array; labels: ArrayLike<number>; n: number },
  cfg: ClassifierConfig,
  opts: TrainClassifierOptions,
): Promise<Classifier> {
  const { epochs, batchSize: B, lr, seed } = opts;
  const log = opts.log ?? (() => {});
  const full = fullConfig(cfg);
  const C = full.channels, S = full.imageSize;
  checkImages(train.images.length, train.n, C, S, "training");
  if (train.labels.length !== train.n) {
    throw new Error(`classifier training: ${train.labels.length} labels for ${train.n} images`);
  }
  for (let i = 0; i < train.n; i++) {
    const l = train.labels[i];
    if (!(Number.isInteger(l) && l >= 0 && l < cfg.numClasses)) {
      throw new Error(
        `classifier training: label ${l} of image ${i} is not in 0..${cfg.numClasses - 1}`,
      );
    }
  }
  if (!(epochs > 0) || !Number.isInteger(B) || B < 1 || !(lr > 0)) {
    throw new Error(`classifier training: bad options epochs ${epochs}, batch ${B}, lr ${lr}`);
  }
  const clf = Classifier.init(cfg, seed);
  const total = Math.ceil((epochs * train.n) / B);
  const warmup = opts.warmupSteps ?? Math.ceil(total * 0.03);
  const shift = opts.shift ?? 2;
  const flip = opts.flip ?? false;
  const edge = opts.edge ?? false;
  const weightDecay = opts.weightDecay ?? 0;
  const opt = adamW(clf.params.tensors(), {
    ...classifierSchedule(total, lr, warmup),
    weightDecay,
  });
  const batcher = new Batcher(train.n, B, mixSeed(seed, 0xba7c));
  const labels = Int32Array.from(train.labels);
  const images = new Float32Array(B * C * S * S);
  const ys = new Int32Array(B);
  const lossSum = empty([1]).keep();
  fill(lossSum, 0);
  const stepsPerEpoch = Math.ceil(train.n / B);
  const t0 = performance.now();
  try {
    for (let step = 1; step <= total; step++) {
      const idx = batcher.next();
      augmentBatch(
        train.images,
        idx,
        C,
        S,
        shift,
        flip,
        mulberry32(mixSeed(seed, step, 0xa06)),
        images,
        edge,
      );
      for (let b = 0; b < B; b++) ys[b] = labels[idx[b]];
      // the step every trainer of this engine takes (kernels/train_step.ts)
      trainStep(
        () => crossEntropy(clf.forward(tensor(images, [B, C, S, S])).logits, intTensor(ys, [B])),
        step - 1,
        { opt, lossSum },
      );
      flush();
      if (step % stepsPerEpoch === 0 || step === total) {
        const k = step % stepsPerEpoch || stepsPerEpoch;
        const mean = (await lossSum.read())[0] / k;
        fill(lossSum, 0);
        const el = (performance.now() - t0) / 1000;
        log(
          `epoch ${Math.ceil(step / stepsPerEpoch)}/${Math.ceil(total / stepsPerEpoch)} ` +
            `step ${step}/${total} loss ${mean.toFixed(4)} lr ${opt.lrAt(step).toExponential(2)} ` +
            `${el.toFixed(0)} s`,
        );
      }
    }
  } catch (e) {
    clf.dispose();
    throw e;
  } finally {
    opt.dispose();
    lossSum.dispose();
  }
  return clf;
}

/** The fraction of n images whose most probable class is their label. */
export async function accuracy(
  clf: Classifier,
  images: Float32Array,
  labels: ArrayLike<number>,
  n: number,
): Promise<number> {
  const { probs } = await clf.predict(images, n);
  return accuracyOf(probs, labels, n, clf.config.numClasses);
}

function accuracyOf(probs: Float32Array, labels: ArrayLike<number>, n: number, K: number): number {
  let right = 0;
  for (let i = 0; i < n; i++) {
    let best = 0;
    for (let j = 1; j < K; j++) if (probs[i * K + j] > probs[i * K + best]) best = j;
    if (best === labels[i]) right++;
  }
  return right / n;
}
