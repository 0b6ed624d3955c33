// IDX files, the format of MNIST and Fashion-MNIST: parsing (gzip or not, unsigned bytes only)
// and a folder of them as one image set.

import { gunzipSync } from "node:zlib";
import { join } from "node:path";
import { concatSets, type ImageSet } from "./image_set.ts";

/** Parsed IDX file: unsigned-byte data and its dimensions. */
export interface IdxArray {
  dims: number[];
  data: Uint8Array;
}

/** The most bytes an IDX file may hold, compressed or not: MNIST's largest is 47 MB. */
export const MAX_IDX_BYTES = 2 ** 30;

/**
 * Parses IDX bytes (gzip-compressed or not); only the unsigned-byte type (0x08) is supported.
 * A gzip stream is inflated to at most `limit` bytes: a small file can inflate to any size.
 */
export function parseIdx(bytes: Uint8Array, name = "<bytes>", limit = MAX_IDX_BYTES): IdxArray {
  const tooLarge = () =>
    new Error(`IDX ${name}: over the ${limit.toLocaleString("en")} bytes an IDX file may hold`);
  if (bytes.length > limit) throw tooLarge();
  if (bytes.length >= 2 && bytes[0] === 0x1f && bytes[1] === 0x8b) {
    try {
      bytes = new Uint8Array(gunzipSync(bytes, { maxOutputLength: limit }));
    } catch (e) {
      if ((e as { code?: string }).code === "ERR_BUFFER_TOO_LARGE") throw tooLarge();
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
  const size = Deno.statSync(path).size;
  if (size > MAX_IDX_BYTES) {
    throw new Error(`IDX ${path}: ${size} bytes, over the ${MAX_IDX_BYTES} an IDX file may hold`);
  }
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

/** Whether `dir` holds IDX image or label files. */
export function hasIdxFiles(dir: string): boolean {
  return (["train", "t10k"] as const).some((p) =>
    findIdx(dir, p, "images") ?? findIdx(dir, p, "labels")
  );
}
