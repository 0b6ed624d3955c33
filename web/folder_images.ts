// A folder of the user's own images, chosen in the page (<input type=file webkitdirectory>) and
// read where it is: nothing is uploaded. It is listed by the command line's code
// (io/image_folder_layout.ts: metadata.jsonl or one subfolder per class, the same one-line
// errors), each image is decoded by an ImageDecoder to RGBA bytes — the page's is the browser's
// own (web/browser_decoder.ts) — and converted to the model's input as the command line converts
// a file (io/rgba_image.ts: alpha on white, grey by BT.601 luma, the area-averaging square fit).

import {
  checkFolderShape,
  checkMetadataSize,
  decodedFolder,
  filesToDecode,
  type FolderEntry,
  type FolderFiles,
  folderImageSet,
  listImageFolder,
  type Listing,
  METADATA_FILE,
  skippedWarning,
  undecodable,
} from "../io/image_folder_layout.ts";
import { checkImageFileSize } from "../io/image_header.ts";
import type { ImageSet } from "../io/image_set.ts";
import { rgbaToSquare } from "../io/rgba_image.ts";
import type { ReadImagesOptions } from "../train/data.ts";

/** A folder the user chose: its files by their path inside it, metadata.jsonl already read. */
export interface ChosenFolder {
  /** the folder's name, as messages name it */
  name: string;
  files: Map<string, File>;
  metadata: Uint8Array | null;
  /** what it holds, listed when it was chosen */
  listing: Listing;
}

/** 8-bit RGBA pixels, 4 bytes a pixel, row by row. */
export interface RgbaImage {
  width: number;
  height: number;
  rgba: ArrayLike<number>;
}

/** Decodes an image file's bytes; errors say what is wrong with it (the caller names the file). */
export type ImageDecoder = (bytes: Uint8Array) => Promise<RgbaImage>;

/**
 * The files of an <input webkitdirectory>, listed as the command line lists a folder: a one-line
 * error when its layout is wrong (images without captions, a line of metadata.jsonl, an empty
 * class folder).
 */
export async function chooseFolder(list: ArrayLike<File>): Promise<ChosenFolder> {
  const all = Array.from(list);
  if (!all.length) throw new Error("the chosen folder holds no files: choose a folder of images");
  const first = (all[0].webkitRelativePath || all[0].name).split("/")[0];
  const files = new Map<string, File>();
  for (const f of all) {
    const parts = (f.webkitRelativePath || f.name).split("/");
    files.set(parts.length > 1 ? parts.slice(1).join("/") : parts[0], f);
  }
  const meta = files.get(METADATA_FILE);
  const name = first || "the chosen folder";
  if (meta) checkMetadataSize(name, meta.size);
  const metadata = meta ? new Uint8Array(await meta.arrayBuffer()) : null;
  const listing = listImageFolder(pageFolder(name, files, metadata));
  return { name, files, metadata, listing };
}

/** The chosen files as the listing reads a folder: subfolders are the paths' segments. */
function pageFolder(
  name: string,
  files: Map<string, File>,
  metadata: Uint8Array | null,
): FolderFiles {
  const dirs = new Map<string, Map<string, boolean>>();
  for (const path of files.keys()) {
    const parts = path.split("/");
    for (let i = 0; i < parts.length; i++) {
      const dir = parts.slice(0, i).join("/");
      if (!dirs.has(dir)) dirs.set(dir, new Map());
      const isDir = i < parts.length - 1;
      dirs.get(dir)!.set(parts[i], isDir || (dirs.get(dir)!.get(parts[i]) ?? false));
    }
  }
  return {
    dir: name,
    readDir: (rel): FolderEntry[] =>
      [...(dirs.get(rel)?.entries() ?? [])].map(([n, isDir]) => ({
        name: n,
        isFile: !isDir,
        isDirectory: isDir,
      })),
    stat(rel) {
      const f = files.get(rel);
      return f ? { size: f.size, mtime: f.lastModified } : null;
    },
    readFile(rel) {
      if (rel !== METADATA_FILE || !metadata) throw new Error(`${name}/${rel} was not read`);
      return metadata;
    },
  };
}

/**
 * The chosen folder's images at `r.size` and `r.channels`, values in [0, 1], with captions,
 * labels and class names as the command line reads the same folder.
 */
export async function readChosenFolder(
  folder: ChosenFolder,
  r: ReadImagesOptions,
  log: (line: string) => void,
  decode: ImageDecoder,
): Promise<ImageSet> {
  const dir = folder.name;
  const channels = checkFolderShape(dir, r.size, r.channels);
  const byFile = new Map<string, Float32Array | null>();
  const skipped: { file: string; reason: string }[] = [];
  const todo = filesToDecode(folder.listing);
  log(`data folder ${dir}: decoding ${todo.length} images to ${channels}×${r.size}×${r.size}`);
  for (const e of todo) {
    try {
      const file = folder.files.get(e.file)!;
      checkImageFileSize(file.size); // bounded before it is read, as the command line's
      const bytes = new Uint8Array(await file.arrayBuffer());
      const img = await decode(bytes);
      byFile.set(e.file, rgbaToSquare(img.rgba, img.width, img.height, r.size, channels));
    } catch (err) {
      byFile.set(e.file, null);
      skipped.push(undecodable(dir, e, err, r.skipBadImages));
    }
  }
  const d = decodedFolder(dir, folder.listing, channels * r.size * r.size, byFile, skipped);
  const warning = skippedWarning(dir, d);
  if (warning) log(warning);
  return folderImageSet(dir, d, r.size, channels, r.labelField);
}
