// Image folders as a data source, read from disk: their layouts (metadata.jsonl, or one subfolder
// per class), their listing and the image set built from them are io/image_folder_layout.ts,
// which the web page shares; here the files are read and decoded (io/image_file.ts: PNG or JPEG
// of any size to [channels, size, size] in [0, 1]). Decoding thousands of files takes a while, so
// the result is cached in the user's cache folder (never in the data folder) and rebuilt whenever
// the folder's listing, metadata.jsonl, the size, the channels or this loader's version change,
// or its contents no longer match the checksum it was written with. Lines naming the same file
// (several captions of one image) share its decoded pixels.

import { createHash } from "node:crypto";
import { userCacheDir } from "../kernels/cache_dir.ts";
import { errnoText } from "./errors.ts";
import { dirname, join, resolve } from "node:path";
import { DEFAULT_CONFIG } from "./config.ts";
import type { ImageSet } from "./image_set.ts";
import { imageToSquare, readImageBytes, UnreadableFile } from "./image_file.ts";
import { isJpeg } from "./image_format.ts";
import {
  checkFolderShape,
  type Decoded,
  decodedFolder,
  type Entry,
  filesToDecode,
  type FolderFiles,
  folderImageSet,
  type Layout,
  listImageFolder,
  type Listing,
  METADATA_FILE,
  requireClasses,
  skippedWarning,
  undecodable,
} from "./image_folder_layout.ts";
import { MAX_HEADER, readSafetensors, writeSafetensors } from "./safetensors.ts";

export { CLASS_FOLDER_COLUMN, columnClasses, IMAGE_EXTENSIONS } from "./image_folder_layout.ts";
export { METADATA_FILE, requireClasses };

/** Part of every cache key: raise it when decoding or resizing changes what a file becomes. */
export const LOADER_VERSION = 2; // 2: JPEGs turned by their EXIF orientation

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

// ---------------------------------------------------------------------------------------------
// the cache's place

/** The user's cache folder for this project (kernels/cache_dir.ts). */
export const defaultCacheDir = userCacheDir;

function sha256(text: string): string {
  return createHash("sha256").update(text).digest("hex");
}

// ---------------------------------------------------------------------------------------------
// listing

/** The folder `dir` on disk, as the listing reads it. */
function diskFolder(dir: string): FolderFiles {
  return {
    dir,
    readDir(rel) {
      const at = rel ? join(dir, rel) : dir;
      // a symbolic link (a class folder linked in from another disk) is what it points to
      return [...Deno.readDirSync(at)].map((e) => {
        if (!e.isSymlink) return e;
        try {
          const st = Deno.statSync(join(at, e.name));
          return { name: e.name, isFile: st.isFile, isDirectory: st.isDirectory };
        } catch {
          return e; // a dangling link: neither file nor folder
        }
      });
    },
    stat(rel) {
      try {
        const st = Deno.statSync(join(dir, rel));
        return st.isFile ? { size: st.size, mtime: st.mtime?.getTime() ?? 0 } : null;
      } catch {
        return null;
      }
    },
    readFile: (rel) => Deno.readFileSync(join(dir, rel)),
  };
}

/**
 * SHA-256 of what an image folder gives a classifier of one column: in listing order, each
 * image's path, the SHA-256 of its bytes and its value in `column` (a class folder's name is in
 * its path). Not where the folder is nor when its files were written, so the same images written
 * on another machine have the same digest; any other image, order or class changes it.
 */
export function imageFolderDigest(dir: string, column: string): string {
  const listing = listImageFolder(diskFolder(dir));
  const fileHashes = new Map<string, string>();
  const h = createHash("sha256").update(JSON.stringify([listing.layout, column]));
  let jpegs = false;
  const types = new Set<string>();
  for (const e of listing.entries) {
    let bytes = fileHashes.get(e.file);
    if (bytes === undefined) {
      const data = Deno.readFileSync(join(dir, e.file));
      jpegs ||= isJpeg(data);
      bytes = createHash("sha256").update(data).digest("hex");
      fileHashes.set(e.file, bytes);
    }
    const value = Object.hasOwn(e.columns, column) ? e.columns[column] : null;
    if (value !== null) types.add(typeof value);
    h.update(JSON.stringify([e.file, bytes, value]) + "\n");
  }
  // 1 and "1" are one class since the classes are read as text where a column mixes them: a
  // classifier trained when they were two has other classes
  if (types.size > 1) h.update("classes-as-text");
  // JPEGs decode upright by their EXIF orientation since loader version 2: a classifier trained
  // on them before saw other pixels (a folder of PNGs, the shipped emoji's, keeps its digest)
  if (jpegs) h.update("jpeg-exif-orientation");
  return h.digest("hex");
}

// ---------------------------------------------------------------------------------------------
// decoding

/** The decoded folder, and how many files could not be read at all (not a decode error). */
function decodeAll(
  dir: string,
  listing: Listing,
  size: number,
  channels: 1 | 3,
  skipBad: boolean,
): { d: Decoded; unreadable: number } {
  const byFile = new Map<string, Float32Array | null>();
  const skipped: { file: string; reason: string }[] = [];
  let unreadable = 0;
  for (const e of filesToDecode(listing)) {
    try {
      byFile.set(e.file, imageToSquare(readImageBytes(join(dir, e.file)), size, channels));
    } catch (err) {
      if (err instanceof UnreadableFile) unreadable++;
      byFile.set(e.file, null);
      skipped.push(undecodable(dir, e, err, skipBad));
    }
  }
  return { d: decodedFolder(dir, listing, channels * size * size, byFile, skipped), unreadable };
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

/** Writes the cache file under its lock; the reason it is not written, or null. */
function writeCache(
  path: string,
  key: string,
  d: Decoded,
  size: number,
  channels: number,
): string | null {
  const lock = openCacheLock(dirname(path));
  try {
    lock.lockSync(true);
    return writeCacheFile(path, key, d, size, channels);
  } finally {
    lock.close();
  }
}

function writeCacheFile(
  path: string,
  key: string,
  d: Decoded,
  size: number,
  channels: number,
): string | null {
  const n = d.images.length / (channels * size * size);
  const metadata = {
    format: CACHE_FORMAT,
    key,
    checksum: cacheChecksum(d),
    layout: d.layout,
    entries: JSON.stringify(d.entries),
    skipped: JSON.stringify(d.skipped),
  };
  // the entries ride in the header, which a reader refuses past MAX_HEADER: such a cache would be
  // written (gigabytes) on every run and read on none
  const headerBytes = new TextEncoder().encode(JSON.stringify(metadata)).length;
  if (headerBytes > MAX_HEADER - 4096) {
    return `the folder's list of ${d.entries.length} images is ${headerBytes} bytes, over the ` +
      `cache's header limit: the folder is decoded on every run`;
  }
  writeSafetensors(path, {
    images: { shape: [n, channels, size, size], data: d.images },
    rows: { shape: [d.rows.length], data: d.rows },
  }, metadata);
  return null;
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
  const channels = checkFolderShape(dir, size, o.channels);
  const labelField = o.labelField ?? DEFAULT_CONFIG.data.label_field;
  const skipBad = o.skipBadImages ?? DEFAULT_CONFIG.data.skip_bad_images;
  const log = o.log ?? ((line: string) => console.error(line));
  if (!isFolder(dir)) throw new Error(`data folder ${dir} not found`);

  const listing = listImageFolder(diskFolder(dir));
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
    const decoded = decodeAll(dir, listing, size, channels, skipBad);
    d = decoded.d;
    if (cachePath && decoded.unreadable) {
      // a file unreadable now (its permissions, a disk error) may be readable next time, with
      // the same size and time: the cache would skip it for good
      log(
        `note: the image cache is not written: ${decoded.unreadable} file(s) could not be ` +
          `read, and the next run tries them again`,
      );
    } else if (cachePath) {
      try {
        const refused = writeCache(cachePath, key, d, size, channels);
        if (refused) log(`note: the image cache is not written: ${refused}`);
      } catch (e) {
        log(`warning: could not write the image cache: ${errnoText(e)}`);
      }
    }
  }
  const warning = skippedWarning(dir, d);
  if (warning) log(warning);
  return folderImageSet(dir, d, size, channels, labelField);
}
