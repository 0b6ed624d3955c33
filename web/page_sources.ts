// What a run in the page reads (train/train_sources.ts): the bundled digits or a folder the user
// chose (web/folder_images.ts, decoded by this browser), the earlier stage's checkpoint the
// Train view picked, a words model's table from the server, and the lesson's grid prompts from
// the page's assets. Nothing is uploaded:
// the page reads the files where they are.

import type { ImageSet } from "../io/image_set.ts";
import type { WordTable } from "../io/word_table.ts";
import type { NamedCheckpoint } from "../train/model_init.ts";
import type { TrainSources } from "../train/train_sources.ts";
import { type ChosenFolder, type ImageDecoder, readChosenFolder } from "./folder_images.ts";
import { loadDigits } from "./train_assets.ts";

/** The data a page run trains on. */
export type PageData = { kind: "digits" } | { kind: "folder"; folder: ChosenFolder };

/** The name a run's config records as its data.source. */
export function sourceName(d: PageData): string {
  return d.kind === "digits" ? "digits" : d.folder.name;
}

let digits: Promise<ImageSet> | null = null;

/** The bundled digits, downloaded once a page (a failed download is tried again). */
function bundledDigits(): Promise<ImageSet> {
  digits ??= loadDigits().catch((e) => {
    digits = null;
    throw e;
  });
  return digits;
}

export function pageSources(o: {
  data: PageData;
  lessonPrompts: string[];
  /** stage 2: the stage-1 checkpoint the view chose */
  earlier: NamedCheckpoint | null;
  log: (line: string) => void;
  /** decodes a chosen folder's images (the page's: the browser's own, web/browser_decoder.ts) */
  decode: ImageDecoder;
  /** shown what was read (the view previews it) */
  read?: (set: ImageSet) => void;
  /** a words model's table by its model.word_table path (the page's: web/loaded_model.ts) */
  wordTable: (path: string) => Promise<WordTable>;
}): TrainSources {
  return {
    async readImages(source, r) {
      if (source !== sourceName(o.data)) {
        throw new Error(
          `data '${source}': the page trains on the data it was given (data.extra_sources is ` +
            `for deno task train)`,
        );
      }
      const set = o.data.kind === "folder"
        ? await readChosenFolder(o.data.folder, r, o.log, o.decode)
        : await bundledDigits();
      o.read?.(set);
      return set;
    },
    wordTable(mc) {
      return mc.stage === 2 && mc.text_encoder === "words"
        ? o.wordTable(mc.word_table)
        : Promise.resolve(null);
    },
    earlierStage(stage) {
      if (!o.earlier) {
        throw new Error(
          `stage ${stage} starts from a stage-${stage - 1} checkpoint: train stage 1 first, or ` +
            `choose one to start from`,
        );
      }
      return o.earlier;
    },
    lessonPrompts: () => o.lessonPrompts,
  };
}
