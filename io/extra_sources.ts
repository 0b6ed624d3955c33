// data.extra_sources: image folders whose images join a run's training split and nothing else —
// another drawing of the same things (the Twemoji emoji beside the Noto ones). The data source
// keeps its split, its evaluation and its classes; an extra image joins it as follows:
//
// - its class (data.label_field) is mapped by name onto the source's classes, so both drawings of
//   a subcategory are one class; a class the source lacks is an error naming the folder and line;
// - an image whose file_name is that of a held-out image of the source is left out, so the
//   evaluation's held-out images stay unseen in every drawing (the emoji folders of both styles
//   name the same emoji by the same file).

import { type ImageSet, sharedPictures } from "./image_set.ts";
import { inFolder, METADATA_FILE } from "./image_folder_layout.ts";

/** One extra folder, read at the source's size and channels. */
export interface ExtraSource {
  source: string;
  set: ImageSet;
}

export interface JoinedSets {
  /** the source's images, then each extra folder's kept images */
  set: ImageSet;
  /** the indices (into `set`) of the extra images that join training */
  extraTrain: Int32Array;
  /** per extra folder: images added, and twins of held-out images left out */
  counts: { source: string; added: number; twins: number }[];
}

/**
 * Appends the extra folders' images to the source's `main` (whose held-out indices are `heldOut`):
 * classes mapped by name, twins of held-out images left out. `labelField` names the class column
 * in messages.
 */
export function joinExtraSources(
  main: ImageSet,
  mainSource: string,
  heldOut: ArrayLike<number>,
  extras: readonly ExtraSource[],
  labelField: string,
): JoinedSets {
  const mainFiles = main.files, mainCaptions = main.captions;
  if (!mainFiles || !mainCaptions) {
    throw new Error(
      `data.extra_sources needs data.source to be an image folder with captions (its held-out ` +
        `images are matched by file name), and '${mainSource}' is not: remove data.extra_sources`,
    );
  }
  const heldNames = new Set(Array.from(heldOut, (i) => mainFiles[i]));
  const classIndex = main.classNames ? new Map(main.classNames.map((c, i) => [c, i])) : null;
  const keep: { x: ExtraSource; idx: number[]; labels: number[] }[] = [];
  const counts: JoinedSets["counts"] = [];
  for (const x of extras) {
    const s = x.set;
    if (!s.files || !s.captions) {
      throw new Error(
        `data.extra_sources: '${x.source}' is not an image folder with captions: give folders ` +
          `like data.source`,
      );
    }
    if (s.channels !== main.channels || s.height !== main.height || s.width !== main.width) {
      throw new Error(
        `data.extra_sources: '${x.source}' was read as ${s.channels}×${s.height}×${s.width}, ` +
          `the source as ${main.channels}×${main.height}×${main.width}`,
      );
    }
    const idx: number[] = [];
    const labels: number[] = [];
    let twins = 0;
    for (let i = 0; i < s.n; i++) {
      if (heldNames.has(s.files[i])) {
        twins++;
        continue;
      }
      let label = 0;
      if (classIndex) {
        const name = s.classNames?.[s.labels[i]];
        const mapped = name === undefined ? undefined : classIndex.get(name);
        if (mapped === undefined) {
          const line = s.lines?.[i];
          const where = line
            ? `${inFolder(x.source, METADATA_FILE)} line ${line}`
            : `'${s.files[i]}'`;
          throw new Error(
            name === undefined
              ? `data.extra_sources: ${where} has no '${labelField}' (data.label_field), which ` +
                `data.source's images have: give every image one`
              : `data.extra_sources: ${where} has the class '${name}' (${labelField}), which ` +
                `data.source '${mainSource}' does not have: fix it or leave the image out`,
          );
        }
        label = mapped;
      }
      idx.push(i);
      labels.push(label);
    }
    keep.push({ x, idx, labels });
    counts.push({ source: x.source, added: idx.length, twins });
  }
  const total = main.n + keep.reduce((a, k) => a + k.idx.length, 0);
  const { images, rows } = sharedPictures([
    { set: main, idx: Int32Array.from({ length: main.n }, (_, i) => i) },
    ...keep.map(({ x, idx }) => ({ set: x.set, idx })),
  ]);
  const captions = [...mainCaptions];
  const files = [...mainFiles];
  const columns = main.columns ? [...main.columns] : mainFiles.map(() => ({}));
  const lines = main.lines ? [...main.lines] : mainFiles.map(() => null);
  const labels = new Int32Array(total);
  labels.set(main.labels);
  let at = main.n;
  for (const { x, idx, labels: mapped } of keep) {
    const s = x.set;
    idx.forEach((i, k) => {
      labels[at] = mapped[k];
      captions.push(s.captions![i]);
      // the folder named, so a message about the image says which drawing it is
      files.push(inFolder(x.source, s.files![i]));
      columns.push(s.columns?.[i] ?? {});
      lines.push(s.lines?.[i] ?? null);
      at++;
    });
  }
  const extraTrain = Int32Array.from({ length: total - main.n }, (_, k) => main.n + k);
  return {
    set: { ...main, images, rows, labels, n: total, captions, files, columns, lines },
    extraTrain,
    counts,
  };
}
