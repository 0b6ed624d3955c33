// Image folders as a data source, in either of the two common layouts:
//
// - metadata.jsonl beside the images (Hugging Face `imagefolder`): one JSON object a line with
//   `file_name` (the image's path inside the folder) and `text` (its caption); every other
//   string or number field is a column, and the column named by `data.label_field` (default
//   "label") gives the classes: its distinct values, sorted, are the class names. Without that
//   column the set has no classes: every label is 0 and `classNames` is null (stage 2 needs only
//   the captions; stage 1 stops with an error naming data.label_field).
// - one subfolder per class (torchvision `ImageFolder`): the folder's name is the class and the
//   caption of every image in it (at any depth); classes are the folder names, sorted.
//
// Every image, PNG or JPEG of any size, becomes [channels, size, size] in [0, 1]
// (io/image_file.ts). Decoding thousands of files takes a while, so the result is cached in the
// user's cache folder (never in the data folder) and rebuilt whenever the folder's listing,
// metadata.jsonl, the size, the channels or this loader's version change, or its contents no
// longer match the checksum it was written with. Lines naming the same file (several captions
// of one image) share its decoded pixels. metadata.jsonl must be UTF-8.

import { createHash } from "node:crypto";
import { userCacheDir } from "../kernels/cache_dir.ts";
import { errnoText } from "./errors.ts";
import { dirname, join, resolve } from "node:path";
import { DEFAULT_CONFIG } from "./config.ts";
import type { ImageSet } from "./image_set.ts";
import { imageToSquare } from "./image_file.ts";
import { METADATA_FILE, requireClasses } from "./image_folder_layout.ts";
import { readSafetensors, writeSafetensors } from "./safetensors.ts";

export { METADATA_FILE, requireClasses };
/** The class column of a folder of class subfolders: each image's subfolder. */
export const CLASS_FOLDER_COLUMN = "label";

/** Files read as images, by extension (any case). */
export const IMAGE_EXTENSIONS: readonly string[] = [".png", ".jpg", ".jpeg"];

/** Part of every cache key: raise it when decoding or resizing changes what a file becomes. */
export const LOADER_VERSION = 1;

export interface ImageFolderOptions {
  /** side of the square images */
  size: number;
  /** 1 (grey, BT.601 luma) or 3 (RGB) */
  channels: number;
  /** metadata.jsonl's class column (default: the config's data.label_field) */
  labelField?: string;
  /** skip images that cannot be decoded, with a warning that counts them (default: the config's
   * data.skip_bad_images) */
  skipBadImages?: boolean;
  /** folder of the decoded-image cache (default: `defaultCacheDir()`); null: no cache */
  cacheDir?: string | null;
  /** progress and warning lines (default: standard error) */
  log?: (line: string) => void;
}

/** One image of the set: its file, caption and columns, and its metadata.jsonl line if any. */
interface Entry {
  /** path inside the folder, "/"-separated */
  file: string;
  caption: string;
  columns: Record<string, string | number>;
  line: number | null;
}

type Layout = "metadata" | "class-folders";

interface Listing {
  layout: Layout;
  entries: Entry[];
  /** what the cache key covers: the files' paths, sizes and modification times, and the
   * metadata.jsonl text */
  fingerprint: string;
}

/** The decoded folder, as cached: each file once, however many lines name it. */
interface Decoded {
  layout: Layout;
  entries: Entry[];
  /** [files, channels, size, size]: each decoded file once */
  images: Float32Array;
  /** entry i shows image rows[i] */
  rows: Int32Array;
  /** files that could not be decoded (skipped), with the reason */
  skipped: { file: string; reason: string }[];
}

// ---------------------------------------------------------------------------------------------
// the cache's place

/** The user's cache folder for this project (kernels/cache_dir.ts). */
export const defaultCacheDir = userCacheDir;

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

// ---------------------------------------------------------------------------------------------
// listing

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function isImageName(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e));
}

/** Entries of a folder, hidden ones (".git", ".DS_Store") left out, in code-unit order. */
function readDirSorted(dir: string): Deno.DirEntry[] {
  return [...Deno.readDirSync(dir)].filter((e) => !e.name.startsWith("."))
    .sort((a, b) => byCodeUnits(a.name, b.name));
}

/** Image files under `dir` at any depth, as "/"-separated paths relative to it. */
function imagesUnder(dir: string, prefix = ""): string[] {
  const out: string[] = [];
  for (const e of readDirSorted(dir)) {
    const rel = prefix ? `${prefix}/${e.name}` : e.name;
    if (e.isDirectory) out.push(...imagesUnder(join(dir, e.name), rel));
    else if (e.isFile && isImageName(e.name)) out.push(rel);
  }
  return out;
}

/** [path, size, mtime] of a file, or null when it is missing or not a file. */
function statFile(dir: string, file: string): [string, number, number] | null {
  try {
    const st = Deno.statSync(join(dir, file));
    return st.isFile ? [file, st.size, st.mtime?.getTime() ?? 0] : null;
  } catch {
    return null;
  }
}

function noImages(dir: string): Error {
  return new Error(
    `data folder ${dir} has no images: put PNG or JPEG files in one subfolder per class, or ` +
      `list them with their captions in ${join(dir, METADATA_FILE)}`,
  );
}

/**
 * A file's bytes as UTF-8 text; bytes that are not UTF-8 are an error naming their line, rather
 * than U+FFFD in a caption.
 */
function utf8Text(bytes: Uint8Array, path: string): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    let start = 0;
    for (let line = 1;; line++) {
      let end = bytes.indexOf(0x0a, start);
      if (end < 0) end = bytes.length;
      const row = bytes.subarray(start, end);
      try {
        new TextDecoder("utf-8", { fatal: true }).decode(row);
      } catch {
        const at = firstBadByte(row);
        throw new Error(
          `${path} line ${line}: not UTF-8 text (byte 0x${row[at].toString(16)} at byte ${
            at + 1
          } of the line): save the file as UTF-8`,
        );
      }
      start = end + 1;
    }
  }
}

/** The index of the first byte of `row` that does not start a valid UTF-8 sequence. */
function firstBadByte(row: Uint8Array): number {
  const cont = (b: number | undefined, lo = 0x80, hi = 0xbf) =>
    b !== undefined && b >= lo && b <= hi;
  for (let i = 0; i < row.length;) {
    const c = row[i];
    if (c < 0x80) {
      i++;
      continue;
    }
    // the second byte's range rules out overlong forms, surrogates and code points past U+10FFFF
    const n = c >= 0xc2 && c <= 0xdf
      ? 2
      : c >= 0xe0 && c <= 0xef
      ? 3
      : c >= 0xf0 && c <= 0xf4
      ? 4
      : 0;
    const lo = c === 0xe0 ? 0xa0 : c === 0xf0 ? 0x90 : 0x80;
    const hi = c === 0xed ? 0x9f : c === 0xf4 ? 0x8f : 0xbf;
    if (n === 0 || !cont(row[i + 1], lo, hi)) return i;
    for (let k = 2; k < n; k++) if (!cont(row[i + k])) return i;
    i += n;
  }
  return 0;
}

/** Reads metadata.jsonl: one entry a non-blank line; each error names the line. */
function listFromMetadata(dir: string): Listing {
  const path = join(dir, METADATA_FILE);
  const text = utf8Text(Deno.readFileSync(path), path);
  const entries: Entry[] = [];
  const stats = new Map<string, [string, number, number]>();
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const example = `{"file_name": "images/a.png", "text": "a red heart"}`;
  lines.forEach((raw, i) => {
    const line = i + 1;
    if (raw.trim() === "") return;
    const bad = (m: string): never => {
      throw new Error(`${path} line ${line}: ${m}`);
    };
    let row: unknown;
    try {
      row = JSON.parse(raw);
    } catch (e) {
      bad(
        `not valid JSON (${(e as Error).message}): write one JSON object a line, e.g. ${example}`,
      );
    }
    if (typeof row !== "object" || row === null || Array.isArray(row)) {
      bad(`not a JSON object: write one object a line, e.g. ${example}`);
    }
    const r = row as Record<string, unknown>;
    if (typeof r.file_name !== "string" || r.file_name === "") {
      bad(`no 'file_name' (the image's path inside the folder), e.g. ${example}`);
    }
    if (typeof r.text !== "string" || r.text.trim() === "") {
      bad(`no 'text' (the image's caption, not empty), e.g. ${example}`);
    }
    const file = (r.file_name as string).replace(/\\/g, "/").replace(/^\.\//, "");
    if (file.startsWith("/") || /^[A-Za-z]:/.test(file) || file.split("/").includes("..")) {
      bad(`file_name '${r.file_name}' must be a path inside the folder ${dir}`);
    }
    if (!stats.has(file)) {
      const st = statFile(dir, file);
      if (!st) bad(`'${file}' not found in ${dir}: fix its file_name or add the file`);
      stats.set(file, st!);
    }
    const columns: Record<string, string | number> = {};
    for (const [k, v] of Object.entries(r)) {
      if (k === "file_name" || k === "text") continue;
      if (typeof v === "string" || (typeof v === "number" && Number.isFinite(v))) columns[k] = v;
    }
    entries.push({ file, caption: r.text as string, columns, line });
  });
  if (entries.length === 0) {
    throw new Error(`${path} lists no images: write one line per image, e.g. ${example}`);
  }
  const fingerprint = JSON.stringify({ metadata: text, files: [...stats.values()] });
  return { layout: "metadata", entries, fingerprint };
}

/** One subfolder per class; the folder name is the class and the caption. */
function listFromClassFolders(dir: string): Listing {
  const entries: Entry[] = [];
  const stats: [string, number, number][] = [];
  let topLevelImages = 0;
  for (const e of readDirSorted(dir)) {
    if (e.isFile && isImageName(e.name)) topLevelImages++;
    if (!e.isDirectory) continue;
    const files = imagesUnder(join(dir, e.name), e.name);
    if (files.length === 0) {
      throw new Error(
        `data folder ${dir}: class folder '${e.name}' has no PNG or JPEG images: add some or ` +
          `remove the folder`,
      );
    }
    for (const file of files) {
      entries.push({
        file,
        caption: e.name,
        columns: { [CLASS_FOLDER_COLUMN]: e.name },
        line: null,
      });
      stats.push(statFile(dir, file)!);
    }
  }
  if (entries.length === 0 && topLevelImages > 0) {
    throw new Error(
      `data folder ${dir}: ${topLevelImages} images but no ${METADATA_FILE}: caption them in ` +
        `${join(dir, METADATA_FILE)}, or move them into one subfolder per class`,
    );
  }
  if (entries.length === 0) throw noImages(dir);
  return { layout: "class-folders", entries, fingerprint: JSON.stringify({ files: stats }) };
}

function listImageFolder(dir: string): Listing {
  let hasMetadata = false;
  try {
    hasMetadata = Deno.statSync(join(dir, METADATA_FILE)).isFile;
  } catch { /* the class-folder layout */ }
  return hasMetadata ? listFromMetadata(dir) : listFromClassFolders(dir);
}

/**
 * SHA-256 of what an image folder gives a classifier of one column: in listing order, each
 * image's path, the SHA-256 of its bytes and its value in `column` (a class folder's name is in
 * its path). Not where the folder is nor when its files were written, so the same images written
 * on another machine have the same digest; any other image, order or class changes it.
 */
export function imageFolderDigest(dir: string, column: string): string {
  const listing = listImageFolder(dir);
  const fileHashes = new Map<string, string>();
  const h = createHash("sha256").update(JSON.stringify([listing.layout, column]));
  for (const e of listing.entries) {
    let bytes = fileHashes.get(e.file);
    if (bytes === undefined) {
      bytes = createHash("sha256").update(Deno.readFileSync(join(dir, e.file))).digest("hex");
      fileHashes.set(e.file, bytes);
    }
    h.update(JSON.stringify([e.file, bytes, e.columns[column] ?? null]) + "\n");
  }
  return h.digest("hex");
}

// ---------------------------------------------------------------------------------------------
// decoding

function decodeAll(
  dir: string,
  listing: Listing,
  size: number,
  channels: 1 | 3,
  skipBad: boolean,
): Decoded {
  const per = channels * size * size;
  const byFile = new Map<string, Float32Array | null>();
  const skipped: { file: string; reason: string }[] = [];
  for (const e of listing.entries) {
    if (byFile.has(e.file)) continue;
    try {
      byFile.set(e.file, imageToSquare(Deno.readFileSync(join(dir, e.file)), size, channels));
    } catch (err) {
      const reason = (err as Error).message.split("\n")[0];
      if (!skipBad) {
        const where = e.line ? ` (${METADATA_FILE} line ${e.line})` : "";
        throw new Error(
          `data folder ${dir}: cannot read image '${e.file}'${where}: ${reason}: replace or ` +
            `remove it, or set data.skip_bad_images: true to skip such files`,
        );
      }
      byFile.set(e.file, null);
      skipped.push({ file: e.file, reason });
    }
  }
  const entries = listing.entries.filter((e) => byFile.get(e.file));
  if (entries.length === 0) {
    throw new Error(`data folder ${dir}: none of its ${byFile.size} images could be decoded`);
  }
  // lines naming one file (several captions of an image) share its decoded pixels
  const rowOf = new Map<string, number>();
  for (const e of entries) if (!rowOf.has(e.file)) rowOf.set(e.file, rowOf.size);
  const images = new Float32Array(rowOf.size * per);
  for (const [file, row] of rowOf) images.set(byFile.get(file)!, row * per);
  const rows = Int32Array.from(entries, (e) => rowOf.get(e.file)!);
  return { layout: listing.layout, entries, images, rows, skipped };
}

// ---------------------------------------------------------------------------------------------
// the cache

// 2: each file's image once, with the row of each entry, and a checksum
const CACHE_FORMAT = "pixart-webgpu-image-folder-2";

/**
 * SHA-256 of what a cache file holds beyond its key: the pixels, the rows, the entries and the
 * skipped files. The cache lives outside the data folder and any process may damage it; a
 * mismatch means it is decoded again, never that damaged pixels are trained on.
 */
function cacheChecksum(d: Decoded): string {
  const bytes = (a: Float32Array | Int32Array) =>
    new Uint8Array(a.buffer, a.byteOffset, a.byteLength);
  return createHash("sha256").update(bytes(d.images)).update(bytes(d.rows))
    .update(JSON.stringify([d.layout, d.entries, d.skipped])).digest("hex");
}

function readCache(
  path: string,
  key: string,
  per: number,
  log: (line: string) => void,
): Decoded | null {
  try {
    Deno.statSync(path);
  } catch {
    return null; // not built yet
  }
  let d: Decoded, checksum: string;
  try {
    const f = readSafetensors(path);
    const m = f.metadata;
    if (m.format !== CACHE_FORMAT || m.key !== key) return null;
    const entries = JSON.parse(m.entries) as Entry[];
    const images = f.tensors.get("images"), rows = f.tensors.get("rows");
    if (!(images?.data instanceof Float32Array) || !(rows?.data instanceof Int32Array)) {
      throw new Error("no images or rows");
    }
    if (rows.data.length !== entries.length) throw new Error("rows do not match");
    const count = images.data.length / per;
    if (!Number.isInteger(count) || rows.data.some((r) => !(r >= 0 && r < count))) {
      throw new Error("images do not match");
    }
    d = {
      layout: m.layout as Layout,
      entries,
      images: images.data,
      rows: rows.data,
      skipped: JSON.parse(m.skipped),
    };
    checksum = m.checksum;
  } catch {
    return null; // damaged: rebuilt and rewritten
  }
  if (cacheChecksum(d) !== checksum) {
    log(`note: the image cache ${path} does not match its checksum: decoding again`);
    return null;
  }
  return d;
}

/**
 * The cache folder's lock (`.lock`): a cache file is written holding it, so that leftovers are
 * removed only under it — the temporary files of a write that was killed (io/safetensors.ts
 * names them `.<file>.<pid>.<random>.tmp`), never those of a write in progress, as a run's folder
 * removes its own under the run's lock.
 */
function openCacheLock(folder: string): Deno.FsFile {
  Deno.mkdirSync(folder, { recursive: true });
  return Deno.openSync(join(folder, ".lock"), { read: true, write: true, create: true });
}

/** Removes what killed cache writes left, unless a write is in progress (it holds the lock). */
function removeCacheLeftovers(folder: string, log: (line: string) => void): void {
  let lock: Deno.FsFile;
  try {
    lock = openCacheLock(folder);
  } catch {
    return; // an unwritable cache folder: writing the cache will say so
  }
  try {
    if (!lock.tryLockSync(true)) return;
    for (const e of Deno.readDirSync(folder)) {
      if (e.isFile && e.name.startsWith(".") && e.name.endsWith(".tmp")) {
        Deno.removeSync(join(folder, e.name));
        log(`removed '${join(folder, e.name)}', left by an interrupted cache write`);
      }
    }
  } catch {
    /* the cache is an optimisation: what cannot be tidied stays */
  } finally {
    lock.close(); // releases the lock
  }
}

function writeCache(path: string, key: string, d: Decoded, size: number, channels: number) {
  const lock = openCacheLock(dirname(path));
  try {
    lock.lockSync(true);
    writeCacheFile(path, key, d, size, channels);
  } finally {
    lock.close();
  }
}

function writeCacheFile(path: string, key: string, d: Decoded, size: number, channels: number) {
  const n = d.images.length / (channels * size * size);
  writeSafetensors(path, {
    images: { shape: [n, channels, size, size], data: d.images },
    rows: { shape: [d.rows.length], data: d.rows },
  }, {
    format: CACHE_FORMAT,
    key,
    checksum: cacheChecksum(d),
    layout: d.layout,
    entries: JSON.stringify(d.entries),
    skipped: JSON.stringify(d.skipped),
  });
}

// ---------------------------------------------------------------------------------------------
// classes

/**
 * Labels and class names from one column's values (undefined: the image has none); null names
 * when no image has the column. `missing(i)` is the error when image i lacks it but others
 * have it.
 */
function classesOf(
  values: (string | number | undefined)[],
  missing: (i: number) => Error,
): { labels: Int32Array; classNames: string[] | null } {
  if (values.every((v) => v === undefined)) {
    return { labels: new Int32Array(values.length), classNames: null };
  }
  const gap = values.findIndex((v) => v === undefined);
  if (gap >= 0) throw missing(gap);
  // numbers sort as numbers (2 before 10); anything else by code units
  const numeric = values.every((v) => typeof v === "number");
  const distinct = [...new Set(values)].sort((a, b) =>
    numeric ? (a as number) - (b as number) : byCodeUnits(String(a), String(b))
  );
  const index = new Map(distinct.map((v, i) => [v, i]));
  return {
    labels: Int32Array.from(values, (v) => index.get(v!)!),
    classNames: distinct.map(String),
  };
}

/**
 * The classes of another column of a loaded image folder, as `data.label_field` naming it would
 * give them (distinct values, sorted); null when the set has no such column.
 */
export function columnClasses(
  set: ImageSet,
  column: string,
): { labels: Int32Array; classNames: string[] } | null {
  if (!set.columns) return null;
  const { labels, classNames } = classesOf(
    set.columns.map((c) => c[column]),
    (i) =>
      new Error(
        `image '${set.files?.[i] ?? i}' has no string or number '${column}' while other ` +
          `images have one: give every image one, or choose another column`,
      ),
  );
  return classNames ? { labels, classNames } : null;
}

// ---------------------------------------------------------------------------------------------
// loading

/** Whether `dir` is a folder (what loadSource reads as an image folder when it has no IDX files). */
export function isFolder(dir: string): boolean {
  try {
    return Deno.statSync(dir).isDirectory;
  } catch {
    return false;
  }
}

/**
 * Loads an image folder as [n, channels, size, size] images in [0, 1] with one caption per image,
 * labels from the class column (or folder), the class names, and each image's file.
 */
export function loadImageFolder(dir: string, o: ImageFolderOptions): ImageSet {
  const { size } = o;
  if (!Number.isInteger(size) || size < 1) {
    throw new Error(`image folder ${dir}: the image size must be a positive integer, got ${size}`);
  }
  if (o.channels !== 1 && o.channels !== 3) {
    throw new Error(
      `image folder ${dir}: images become 1 (grey) or 3 (RGB) channels, not ${o.channels}: ` +
        `set model.in_channels to 1 or 3`,
    );
  }
  const channels = o.channels;
  const labelField = o.labelField ?? DEFAULT_CONFIG.data.label_field;
  const skipBad = o.skipBadImages ?? DEFAULT_CONFIG.data.skip_bad_images;
  const log = o.log ?? ((line: string) => console.error(line));
  if (!isFolder(dir)) throw new Error(`data folder ${dir} not found`);

  const listing = listImageFolder(dir);
  const per = channels * size * size;
  const cacheDir = o.cacheDir === undefined ? defaultCacheDir() : o.cacheDir;
  // one file per (folder, size, channels, skipping), replaced when the folder changes
  const slot = sha256(JSON.stringify([resolve(dir), size, channels, skipBad])).slice(0, 24);
  const cachePath = cacheDir ? join(cacheDir, "image-folders", `${slot}.safetensors`) : null;
  const key = sha256(
    JSON.stringify([LOADER_VERSION, size, channels, skipBad, listing.fingerprint]),
  );

  if (cachePath) removeCacheLeftovers(dirname(cachePath), log);
  let d = cachePath ? readCache(cachePath, key, per, log) : null;
  if (d) log(`data folder ${dir}: ${d.entries.length} images from the cache ${cachePath}`);
  else {
    const files = new Set(listing.entries.map((e) => e.file)).size;
    log(`data folder ${dir}: decoding ${files} images to ${channels}×${size}×${size}`);
    d = decodeAll(dir, listing, size, channels, skipBad);
    if (cachePath) {
      try {
        writeCache(cachePath, key, d, size, channels);
      } catch (e) {
        log(`warning: could not write the image cache: ${errnoText(e)}`);
      }
    }
  }
  if (d.skipped.length) {
    const first = d.skipped[0];
    log(
      `warning: data folder ${dir}: skipped ${d.skipped.length} image(s) that could not be ` +
        `decoded (data.skip_bad_images), first '${first.file}': ${first.reason}`,
    );
  }
  const column = d.layout === "class-folders" ? CLASS_FOLDER_COLUMN : labelField;
  const { labels, classNames } = classesOf(
    d.entries.map((e) => e.columns[column]),
    (i) =>
      new Error(
        `${join(dir, METADATA_FILE)} line ${d.entries[i].line} has no string or number ` +
          `'${column}' (data.label_field) while other lines have one: give every line a ` +
          `class, or none`,
      ),
  );
  return {
    // lines naming one file share its picture in memory too, not only in the cache
    images: d.images,
    rows: d.rows.length * per === d.images.length && d.rows.every((r, i) => r === i)
      ? null
      : d.rows,
    labels,
    n: d.entries.length,
    channels,
    height: size,
    width: size,
    captions: d.entries.map((e) => e.caption),
    classNames,
    files: d.entries.map((e) => e.file),
    columns: d.entries.map((e) => e.columns),
    lines: d.entries.map((e) => e.line),
  };
}
