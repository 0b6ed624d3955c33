// An image folder's layout, apart from reading its files: io/image_folder.ts reads them from disk
// (and caches what it decoded), the web page from the folder a user chose (its own decoders). Both
// list the folder here, the same way and with the same one-line errors, and build the image set
// from the decoded pixels here:
//
// - metadata.jsonl beside the images (Hugging Face `imagefolder`): one JSON object a line with
//   `file_name` (the image's path inside the folder) and `text` (its caption); every other
//   string or number field is a column, and the column named by `data.label_field` (default
//   "label") gives the classes: its distinct values, sorted, are the class names. Without that
//   column the set has no classes: every label is 0 and `classNames` is null (stage 2 needs only
//   the captions; stage 1 stops with an error naming data.label_field). It must be UTF-8.
// - one subfolder per class (torchvision `ImageFolder`): the folder's name is the class and the
//   caption of every image in it (at any depth); classes are the folder names, sorted.

import type { ImageSet } from "./image_set.ts";
import { utf8Text } from "./utf8_text.ts";

export const METADATA_FILE = "metadata.jsonl";
/** A larger metadata.jsonl is refused before it is read (its text must fit in one string). */
export const MAX_METADATA_BYTES = 256 * 2 ** 20;
/** The class column of a folder of class subfolders: each image's subfolder. */
export const CLASS_FOLDER_COLUMN = "label";

/** Files read as images, by extension (any case). */
export const IMAGE_EXTENSIONS: readonly string[] = [".png", ".jpg", ".jpeg"];

/** An entry of a subfolder, as FolderFiles lists it. */
export interface FolderEntry {
  name: string;
  isFile: boolean;
  isDirectory: boolean;
}

/** A folder's files as the listing reads them: the disk's, or those a user chose in a page. */
export interface FolderFiles {
  /** the folder as the user named it (messages name files under it) */
  readonly dir: string;
  /** the entries of the subfolder `rel` ("" for the folder itself, else "a/b") */
  readDir(rel: string): FolderEntry[];
  /** the size and modification time (ms) of the file `rel`, or null when it is no file */
  stat(rel: string): { size: number; mtime: number } | null;
  /** the bytes of the file `rel` (metadata.jsonl) */
  readFile(rel: string): Uint8Array;
}

/** One image of the set: its file, caption and columns, and its metadata.jsonl line if any. */
export interface Entry {
  /** path inside the folder, "/"-separated */
  file: string;
  caption: string;
  columns: Record<string, string | number>;
  line: number | null;
}

export type Layout = "metadata" | "class-folders";

export interface Listing {
  layout: Layout;
  entries: Entry[];
  /** what the cache key covers: the files' paths, sizes and modification times, and the
   * metadata.jsonl text */
  fingerprint: string;
}

/** The decoded folder, as cached: each file once, however many lines name it. */
export interface Decoded {
  layout: Layout;
  entries: Entry[];
  /** [files, channels, size, size]: each decoded file once */
  images: Float32Array;
  /** entry i shows image rows[i] */
  rows: Int32Array;
  /** files that could not be decoded (skipped), with the reason */
  skipped: { file: string; reason: string }[];
}

/**
 * A file's path in messages: `rel` ("/"-separated, inside the folder) under the folder `dir` as
 * the user named it, one separator between them ("data/emoji/" + "a.png": "data/emoji/a.png").
 */
export function inFolder(dir: string, rel: string): string {
  if (!dir) return rel;
  const base = dir.replace(/[\\/]+$/, "");
  return base ? `${base}/${rel}` : `/${rel}`;
}

// ---------------------------------------------------------------------------------------------
// listing

const byCodeUnits = (a: string, b: string) => (a < b ? -1 : a > b ? 1 : 0);

function isImageName(name: string): boolean {
  const lower = name.toLowerCase();
  return IMAGE_EXTENSIONS.some((e) => lower.endsWith(e));
}

/**
 * Entries of a subfolder, hidden ones (".git", ".DS_Store") left out, in code-unit order of their
 * NFC names: a name written on macOS comes back decomposed ("e" + U+0301 for "é"), elsewhere
 * composed, and the order (so the held-out split) must not depend on the machine.
 */
function readDirSorted(f: FolderFiles, rel: string): FolderEntry[] {
  return f.readDir(rel).filter((e) => !e.name.startsWith("."))
    .sort((a, b) => byCodeUnits(a.name.normalize("NFC"), b.name.normalize("NFC")));
}

/** Deeper subfolders are an error: a symbolic link to a folder above would otherwise recurse forever. */
export const MAX_FOLDER_DEPTH = 32;

/** Image files under the subfolder `rel` at any depth, as "/"-separated paths in the folder. */
function imagesUnder(f: FolderFiles, rel: string, depth = 1): string[] {
  if (depth > MAX_FOLDER_DEPTH) {
    throw new Error(
      `data folder ${f.dir}: '${
        rel.split("/").slice(0, 4).join("/")
      }/…' is nested more than ${MAX_FOLDER_DEPTH} folders deep: ` +
        `remove the symbolic link that loops back to a folder above it`,
    );
  }
  const out: string[] = [];
  for (const e of readDirSorted(f, rel)) {
    const path = `${rel}/${e.name}`;
    if (e.isDirectory) out.push(...imagesUnder(f, path, depth + 1));
    else if (e.isFile && isImageName(e.name)) out.push(path);
  }
  return out;
}

/** [path, size, mtime] of a file, or null when it is missing or not a file. */
function statFile(f: FolderFiles, file: string): [string, number, number] | null {
  const st = f.stat(file);
  return st ? [file, st.size, st.mtime] : null;
}

function noImages(dir: string): Error {
  return new Error(
    `data folder ${dir} has no images: put PNG or JPEG files in one subfolder per class, or ` +
      `list them with their captions in ${inFolder(dir, METADATA_FILE)}`,
  );
}

/** Refuses a metadata.jsonl of `size` bytes over MAX_METADATA_BYTES, before it is read. */
export function checkMetadataSize(dir: string, size: number) {
  if (size > MAX_METADATA_BYTES) {
    throw new Error(
      `${inFolder(dir, METADATA_FILE)}: ${size} bytes, over the ${MAX_METADATA_BYTES / 2 ** 20} ` +
        `MiB it may have: split the data set into several folders (data.extra_sources)`,
    );
  }
}

/** Reads metadata.jsonl: one entry a non-blank line; each error names the line. */
function listFromMetadata(f: FolderFiles): Listing {
  const dir = f.dir;
  const path = inFolder(dir, METADATA_FILE);
  checkMetadataSize(dir, f.stat(METADATA_FILE)?.size ?? 0);
  const text = utf8Text(f.readFile(METADATA_FILE), path);
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
    const named = (r.file_name as string).replace(/\\/g, "/").replace(/^\.\//, "");
    if (named.startsWith("/") || /^[A-Za-z]:/.test(named) || named.split("/").includes("..")) {
      bad(`file_name '${r.file_name}' must be a path inside the folder ${dir}`);
    }
    // one spelling a file: "img/./a.png" and "img//a.png" are img/a.png, one picture, not two
    // (no node:path here: the web page reads folders with this module)
    const file = named.split("/").filter((part) => part !== "" && part !== ".").join("/");
    if (!stats.has(file)) {
      const st = statFile(f, file);
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
function listFromClassFolders(f: FolderFiles): Listing {
  const dir = f.dir;
  const entries: Entry[] = [];
  const stats: [string, number, number][] = [];
  let topLevelImages = 0;
  for (const e of readDirSorted(f, "")) {
    if (e.isFile && isImageName(e.name)) topLevelImages++;
    if (!e.isDirectory) continue;
    const files = imagesUnder(f, e.name);
    if (files.length === 0) {
      throw new Error(
        `data folder ${dir}: class folder '${e.name}' has no PNG or JPEG images: add some or ` +
          `remove the folder`,
      );
    }
    // the class and caption as typed (NFC), whatever form the file system keeps the name in
    const name = e.name.normalize("NFC");
    for (const file of files) {
      entries.push({
        file,
        caption: name,
        columns: { [CLASS_FOLDER_COLUMN]: name },
        line: null,
      });
      stats.push(statFile(f, file)!);
    }
  }
  if (entries.length === 0 && topLevelImages > 0) {
    throw new Error(
      `data folder ${dir}: ${topLevelImages} images but no ${METADATA_FILE}: caption them in ` +
        `${inFolder(dir, METADATA_FILE)}, or move them into one subfolder per class`,
    );
  }
  if (entries.length === 0) throw noImages(dir);
  return { layout: "class-folders", entries, fingerprint: JSON.stringify({ files: stats }) };
}

/**
 * The images of a folder and their captions and columns: from metadata.jsonl when the folder has
 * one, else one subfolder per class.
 */
export function listImageFolder(f: FolderFiles): Listing {
  return f.stat(METADATA_FILE) ? listFromMetadata(f) : listFromClassFolders(f);
}

// ---------------------------------------------------------------------------------------------
// decoding

/**
 * The first entry naming each file, in listing order: the files to decode, each once however many
 * lines name it.
 */
export function filesToDecode(listing: Listing): Entry[] {
  const seen = new Set<string>();
  const out: Entry[] = [];
  for (const e of listing.entries) {
    if (seen.has(e.file)) continue;
    seen.add(e.file);
    out.push(e);
  }
  return out;
}

/**
 * What a file that could not be decoded becomes: with `skipBad` a skipped file and its reason,
 * else the one-line error naming it (and its metadata.jsonl line).
 */
export function undecodable(
  dir: string,
  e: Entry,
  err: unknown,
  skipBad: boolean,
): { file: string; reason: string } {
  const reason = ((err as Error)?.message ?? String(err)).split("\n")[0];
  if (!skipBad) {
    const where = e.line ? ` (${METADATA_FILE} line ${e.line})` : "";
    throw new Error(
      `data folder ${dir}: cannot read image '${e.file}'${where}: ${reason}: replace or ` +
        `remove it, or set data.skip_bad_images: true to skip such files (deno task ` +
        `classifier: --skip-bad-images)`,
    );
  }
  return { file: e.file, reason };
}

/**
 * The decoded folder from each file's [channels, size, size] pixels (`byFile`; null: skipped):
 * the entries whose file decoded, each file's pixels once, and the row each entry shows.
 */
export function decodedFolder(
  dir: string,
  listing: Listing,
  per: number,
  byFile: Map<string, Float32Array | null>,
  skipped: { file: string; reason: string }[],
): Decoded {
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

/** The size and channels an image folder is decoded to, checked: a one-line error otherwise. */
export function checkFolderShape(dir: string, size: number, channels: number): 1 | 3 {
  if (!Number.isInteger(size) || size < 1) {
    throw new Error(`image folder ${dir}: the image size must be a positive integer, got ${size}`);
  }
  if (channels !== 1 && channels !== 3) {
    throw new Error(
      `image folder ${dir}: images become 1 (grey) or 3 (RGB) channels, not ${channels}: ` +
        `set model.in_channels to 1 or 3`,
    );
  }
  return channels;
}

/** The warning line of the files data.skip_bad_images skipped, or null when none was. */
export function skippedWarning(dir: string, d: Decoded): string | null {
  if (!d.skipped.length) return null;
  const first = d.skipped[0];
  return `warning: data folder ${dir}: skipped ${d.skipped.length} image(s) that could not be ` +
    `decoded (data.skip_bad_images), first '${first.file}': ${first.reason}`;
}

// ---------------------------------------------------------------------------------------------
// classes

/** An entry's own value of a column (not an inherited property: "constructor" is no column). */
function columnValue(
  columns: Record<string, string | number>,
  column: string,
): string | number | undefined {
  return Object.hasOwn(columns, column) ? columns[column] : undefined;
}

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
  // numbers sort as numbers (2 before 10); anything else by code units, as text: 1 and "1" are
  // one class (one name), not two
  const numeric = values.every((v) => typeof v === "number");
  const keys: (string | number)[] = numeric ? values as number[] : values.map((v) => String(v));
  const distinct = [...new Set<string | number>(keys)].sort((a, b) =>
    numeric ? (a as number) - (b as number) : byCodeUnits(String(a), String(b))
  );
  const index = new Map(distinct.map((v, i) => [v, i]));
  return {
    labels: Int32Array.from({ length: keys.length }, (_, i) => index.get(keys[i])!),
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
    set.columns.map((c) => columnValue(c, column)),
    (i) =>
      new Error(
        `image '${set.files?.[i] ?? i}' has no string or number '${column}' while other ` +
          `images have one: give every image one, or choose another column`,
      ),
  );
  return classNames ? { labels, classNames } : null;
}

// ---------------------------------------------------------------------------------------------
// the image set

/**
 * The image set of a decoded folder: its pictures in [0, 1] (each once; rows says which one an
 * entry shows where entries share one) with one caption
 * per image, labels from the class column `labelField` (or the class folder), the class names,
 * and each image's file, columns and metadata.jsonl line.
 */
export function folderImageSet(
  dir: string,
  d: Decoded,
  size: number,
  channels: 1 | 3,
  labelField: string,
): ImageSet {
  const per = channels * size * size;
  const column = d.layout === "class-folders" ? CLASS_FOLDER_COLUMN : labelField;
  const { labels, classNames } = classesOf(
    d.entries.map((e) => columnValue(e.columns, column)),
    (i) =>
      new Error(
        `${inFolder(dir, METADATA_FILE)} line ${d.entries[i].line} has no string or number ` +
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

/**
 * The class names of a set for class-conditional training; a one-line error when the set is an
 * image folder without a class column. Null for sets whose classes the config names (IDX, MNIST).
 */
export function requireClasses(
  set: ImageSet,
  source: string,
  labelField: string,
): string[] | null {
  if (set.classNames === null) {
    throw new Error(
      `data '${source}' has no '${labelField}' column (data.label_field) in its ` +
        `${METADATA_FILE}: class-conditional training needs a class per image; set ` +
        `data.label_field to one of its columns or use one subfolder per class`,
    );
  }
  return set.classNames ?? null;
}
