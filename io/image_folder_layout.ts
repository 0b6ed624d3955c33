// What an image folder's layout means, apart from reading its files (io/image_folder.ts reads them
// from disk, the web page from the folder a user chose): the metadata file's name and the classes
// a class-conditional run needs.

import type { ImageSet } from "./image_set.ts";

export const METADATA_FILE = "metadata.jsonl";

/**
 * A file's path in messages: `rel` ("/"-separated, inside the folder) under the folder `dir` as
 * the user named it, one separator between them ("data/emoji/" + "a.png": "data/emoji/a.png").
 */
export function inFolder(dir: string, rel: string): string {
  if (!dir) return rel;
  const base = dir.replace(/[\\/]+$/, "");
  return base ? `${base}/${rel}` : `/${rel}`;
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
