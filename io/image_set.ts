// A data set in memory (docs/spec.md §1): images [n, C, H, W] with labels, and for an image
// folder its captions, class names, files and metadata columns; its held-out split, the copy of a
// batch, and the model's input (resized to its size and scaled to [-1, 1]). Where sets come
// from: io/data.ts.

import { mixSeed, shuffledIndices } from "../kernels/host_random.ts";
import { resizeBilinear } from "./resize_bilinear.ts";

/**
 * n images [C, H, W] (row-major, channel-major per image) with integer labels. Entries that show
 * the same picture (metadata.jsonl lines naming one file, several captions of an image) may share
 * it: `images` then holds each picture once and `rows` says which one each entry shows. Read an
 * entry's pixels with imageOf or gatherBatch, never by indexing `images` with the entry's index.
 */
export interface ImageSet {
  /** the pictures [count, C, H, W]: n of them without `rows`, else as many as rows names */
  images: Float32Array;
  /** entry k shows picture rows[k] of `images`; absent or null: entry k is picture k */
  rows?: Int32Array | null;
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

/** The picture of entry k: its row in `images`. */
export function rowOf(set: ImageSet, k: number): number {
  return set.rows ? set.rows[k] : k;
}

/** Entry k's pixels [C, H, W]: a view into `images`, not a copy. */
export function imageOf(set: ImageSet, k: number): Float32Array {
  const per = set.channels * set.height * set.width;
  const r = rowOf(set, k);
  return set.images.subarray(r * per, (r + 1) * per);
}

/** How many pictures `images` holds (n, unless entries share them). */
export function pictureCount(set: ImageSet): number {
  return set.images.length / (set.channels * set.height * set.width);
}

/**
 * The pictures that entries `idx` of each part show, each copied once, and the row of each entry
 * in the order given: null rows when every entry has a picture of its own.
 */
export function sharedPictures(
  parts: readonly { set: ImageSet; idx: ArrayLike<number> }[],
): { images: Float32Array; rows: Int32Array | null } {
  const n = parts.reduce((a, p) => a + p.idx.length, 0);
  const rows = new Int32Array(n);
  const picked: { set: ImageSet; row: number }[] = [];
  let at = 0;
  for (const { set, idx } of parts) {
    const newRow = new Map<number, number>();
    for (let i = 0; i < idx.length; i++) {
      const r = rowOf(set, idx[i]);
      let to = newRow.get(r);
      if (to === undefined) {
        to = picked.length;
        newRow.set(r, to);
        picked.push({ set, row: r });
      }
      rows[at++] = to;
    }
  }
  const per = parts.length ? parts[0].set.channels * parts[0].set.height * parts[0].set.width : 0;
  const images = new Float32Array(picked.length * per);
  picked.forEach(({ set, row }, k) => {
    images.set(set.images.subarray(row * per, (row + 1) * per), k * per);
  });
  return { images, rows: picked.length === n ? null : rows };
}

/**
 * Splits the entries 0 … n−1 into training and held-out indices by picture: a seeded shuffle of
 * the pictures, then the last round(pictures·fraction) of them are held out with every entry that
 * shows them, so a picture listed under several captions is never both trained on and held out.
 * `rows` (an image set's: entry k shows picture rows[k]; null: entry k is picture k) orders the
 * pictures by their first entry, so a set whose entries are all different pictures splits as its
 * entries would. Both parts are returned sorted ascending: the split depends only on the pictures'
 * order, the fraction and the seed.
 */
export function splitHoldout(
  n: number,
  fraction: number,
  seed: number,
  rows: ArrayLike<number> | null = null,
): { train: Int32Array; holdout: Int32Array } {
  if (!(fraction >= 0 && fraction < 1)) {
    throw new Error(`holdout fraction must be in [0, 1), got ${fraction}`);
  }
  // each entry's picture, numbered by first appearance
  const group = new Int32Array(n);
  const numbered = new Map<number, number>();
  for (let k = 0; k < n; k++) {
    const row = rows ? rows[k] : k;
    let g = numbered.get(row);
    if (g === undefined) numbered.set(row, g = numbered.size);
    group[k] = g;
  }
  const G = numbered.size;
  const perm = shuffledIndices(G, mixSeed(seed, 0x401d));
  const held = new Uint8Array(G);
  for (const g of perm.slice(G - Math.round(G * fraction))) held[g] = 1;
  const train: number[] = [], holdout: number[] = [];
  for (let k = 0; k < n; k++) (held[group[k]] ? holdout : train).push(k);
  return { train: Int32Array.from(train), holdout: Int32Array.from(holdout) };
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
  const { images, rows } = sharedPictures(
    parts.map((set) => ({ set, idx: Int32Array.from({ length: set.n }, (_, i) => i) })),
  );
  const labels = new Int32Array(n);
  let k = 0;
  for (const p of parts) {
    labels.set(p.labels, k);
    k += p.n;
  }
  return { images, rows, labels, n, channels, height, width };
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
  // each picture once: entries that share one keep sharing it
  const resized = set.height === imageSize && set.width === imageSize ? set.images : resizeBilinear(
    set.images,
    pictureCount(set),
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
    images.set(imageOf(set, k), b * size);
    labels[b] = set.labels[k];
  }
  return { images, labels, captions };
}
