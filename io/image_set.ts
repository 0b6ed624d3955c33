// A data set in memory (docs/spec.md §1): images [n, C, H, W] with labels, and for an image
// folder its captions, class names, files and metadata columns; its held-out split, the copy of a
// batch, and the model's input (resized to its size and scaled to [-1, 1]). Where sets come
// from: io/data.ts.

import { mixSeed, shuffledIndices } from "../kernels/host_random.ts";
import { resizeBilinear } from "./resize_bilinear.ts";

/** Images [n, C, H, W] (row-major, channel-major per image) with integer labels. */
export interface ImageSet {
  images: Float32Array;
  labels: Int32Array;
  n: number;
  channels: number;
  height: number;
  width: number;
  /** one caption per image (image folders); absent: captions come from the labels */
  captions?: string[] | null;
  /** the name of each label (image folders); null: a set without classes, every label 0 */
  classNames?: string[] | null;
  /** each image's path inside its folder (image folders), for messages */
  files?: string[] | null;
  /** each image's metadata columns (image folders: `category`, `label`, …) */
  columns?: Record<string, string | number>[] | null;
  /** each image's line in metadata.jsonl (image folders; null in the class-folder layout) */
  lines?: (number | null)[] | null;
}

/**
 * Splits 0 … n−1 into training and held-out indices: a seeded shuffle, then the last
 * round(n·fraction) indices are held out. Both parts are returned sorted ascending, so the split
 * depends only on (n, fraction, seed).
 */
export function splitHoldout(
  n: number,
  fraction: number,
  seed: number,
): { train: Int32Array; holdout: Int32Array } {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new Error(`holdout fraction must be in [0, 1), got ${fraction}`);
  }
  const perm = shuffledIndices(n, mixSeed(seed, 0x401d));
  const k = Math.round(n * fraction);
  const train = perm.slice(0, n - k).sort();
  const holdout = perm.slice(n - k).sort();
  return { train, holdout };
}

/** The sets one after another (same image size), as one set: `what` names them in errors. */
export function concatSets(parts: ImageSet[], what: string): ImageSet {
  if (parts.length === 1) return parts[0];
  const { channels, height, width } = parts[0];
  for (const p of parts) {
    if (p.channels !== channels || p.height !== height || p.width !== width) {
      throw new Error(`${what}: image sizes differ between files`);
    }
  }
  const n = parts.reduce((s, p) => s + p.n, 0);
  const images = new Float32Array(n * channels * height * width);
  const labels = new Int32Array(n);
  let k = 0;
  for (const p of parts) {
    images.set(p.images, k * channels * height * width);
    labels.set(p.labels, k);
    k += p.n;
  }
  return { images, labels, n, channels, height, width };
}

/** x0 = 2·x − 1: maps [0, 1] to [-1, 1] (a new array). */
export function toSigned(x: Float32Array): Float32Array {
  const out = new Float32Array(x.length);
  for (let i = 0; i < x.length; i++) out[i] = 2 * x[i] - 1;
  return out;
}

/**
 * The model's input: resize (bilinear, if the size differs) to imageSize × imageSize and map to
 * [-1, 1]. Labels, captions and class names are shared with the input set.
 */
export function prepareImages(set: ImageSet, imageSize: number): ImageSet {
  const resized = set.height === imageSize && set.width === imageSize ? set.images : resizeBilinear(
    set.images,
    set.n,
    set.channels,
    set.height,
    set.width,
    imageSize,
    imageSize,
  );
  return { ...set, images: toSigned(resized), height: imageSize, width: imageSize };
}

/** Copies the images, labels and (if the set has them) captions of `indices` into a batch. */
export function gatherBatch(
  set: ImageSet,
  indices: ArrayLike<number>,
): { images: Float32Array; labels: Int32Array; captions: string[] | null } {
  const size = set.channels * set.height * set.width;
  const images = new Float32Array(indices.length * size);
  const labels = new Int32Array(indices.length);
  const captions = set.captions ? Array.from(indices, (k) => set.captions![k]) : null;
  for (let b = 0; b < indices.length; b++) {
    const k = indices[b];
    if (!(k >= 0 && k < set.n)) {
      throw new Error(`gatherBatch: index ${k} out of range 0..${set.n - 1}`);
    }
    images.set(set.images.subarray(k * size, (k + 1) * size), b * size);
    labels[b] = set.labels[k];
  }
  return { images, labels, captions };
}
