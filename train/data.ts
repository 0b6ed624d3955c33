// What a training run reads: the configured data set at the model's size and channels, its
// training and held-out split, the class names, and the caption each training image is drawn
// with (docs/spec.md §1): an image folder's own caption, a class's caption, or a digit's word or
// numeral. Extra folders (data.extra_sources, io/extra_sources.ts) add training images after the
// source's own; the split, the evaluation and FID see the source's alone (`sourceTrain`). The
// images are read by a TrainSources (train/train_sources.ts): from files, or in the web page.

import { checkCaptionLengths } from "../io/caption_length.ts";
import type { Config } from "../io/config_schema.ts";
import { type ImageSet, prepareImages, splitHoldout } from "../io/image_set.ts";
import { captionChoices, captionFor, defaultCaptions, MNIST_WORDS } from "../io/captions.ts";
import { type ExtraSource, joinExtraSources } from "../io/extra_sources.ts";
import { requireClasses } from "../io/image_folder_layout.ts";
import type { ModelConfig } from "../model/config.ts";
import { normalizePrompt, tokenize } from "../model/tokenizer.ts";
import { TooManyTokensError } from "../model/word_tokenizer.ts";

/** How the images are wanted: an image folder is decoded to this; other sources keep theirs. */
export interface ReadImagesOptions {
  /** side of the square images */
  size: number;
  /** 1 (grey) or 3 (RGB) */
  channels: number;
  /** metadata.jsonl's class column (data.label_field) */
  labelField: string;
  /** skip images that cannot be decoded (data.skip_bad_images) */
  skipBadImages: boolean;
}

/** Reads a data source's images in [0, 1] (TrainSources.readImages). */
export type ReadImages = (source: string, options: ReadImagesOptions) => Promise<ImageSet>;

export class TrainingData {
  private constructor(
    private readonly cfg: Config,
    private readonly read: ReadImages,
    /** the images at the model's size in [-1, 1], with labels (and captions for a folder) */
    readonly set: ImageSet,
    /** indices of the training images; a quality filter may narrow them (keepOnly) */
    public train: Int32Array,
    readonly heldOut: Int32Array,
    /** the classes by label: a folder's, the config's captions, or the digits' words */
    readonly classNames: readonly string[],
    /** one caption per class (the config's or the data set's), or null */
    readonly classCaptions: readonly string[] | null,
    /** how many of `set`'s images are data.source's (the first ones); the rest are extra */
    readonly sourceCount: number,
  ) {}

  /** The training images of data.source itself, without data.extra_sources': what the
   * evaluation's references are drawn from. */
  get sourceTrain(): Int32Array {
    return this.train.filter((i) => i < this.sourceCount);
  }

  /**
   * Loads `cfg.data.source` through `read` for a model `mc` trained at `stage`; checks before any
   * step that every caption fits the tokenizer and that the classes fit the model.
   */
  static async load(
    cfg: Config,
    mc: ModelConfig,
    stage: 1 | 2 | 3,
    read: ReadImages,
    tokenizeCaption: (prompts: string[]) => unknown = (p) => tokenize(p, mc.text_len),
    log: (line: string) => void = (line) => console.error(line),
  ): Promise<TrainingData> {
    const source = cfg.data.source;
    const raw = await read(source, readOptions(cfg, mc.image_size, mc.in_channels));
    if (raw.channels !== mc.in_channels) {
      throw new Error(
        `data '${source}' has ${raw.channels} channel(s) but model.in_channels is ${mc.in_channels}`,
      );
    }
    if (raw.captions && cfg.data.captions) {
      // a folder's captions (its metadata.jsonl or class folder names) would be read, not these
      throw new Error(
        `data '${source}' has captions of its own (from its metadata.jsonl or class folder ` +
          `names): remove data.captions, or write the captions into the folder`,
      );
    }
    let set = prepareImages(raw, mc.image_size);
    const folderClasses = stage === 1
      ? requireClasses(raw, source, cfg.data.label_field)
      : raw.classNames ?? null;
    const classCaptions = raw.captions ? null : cfg.data.captions ?? defaultCaptions(source);
    const classNames = folderClasses ?? classCaptions ?? MNIST_WORDS;
    const numClasses = labelCount(set.labels);
    if (stage === 1 && numClasses > mc.num_classes) {
      throw new Error(
        `data has ${numClasses} classes but model.num_classes is ${mc.num_classes}: raise it`,
      );
    }
    // a folder's own captions, checked against the tokenizer before the first step
    const checkCaptions = (s: ImageSet): ImageSet => {
      if (mc.text_encoder !== "words") {
        return checkCaptionLengths(s, mc.text_len, {
          normalize: normalizePrompt,
          truncate: cfg.data.truncate_captions,
        });
      }
      checkWordCaptions(s, tokenizeCaption);
      return s;
    };
    if (stage > 1) {
      if (set.captions) set = checkCaptions(set);
      else {
        // a class without a caption would be drawn as no prompt at all
        const named = classCaptions?.length ?? MNIST_WORDS.length;
        if (numClasses > named) {
          throw new Error(
            `data has ${numClasses} classes, and ${
              classCaptions ? "data.captions names" : "the digits' words name"
            } ${named}: give data.captions one caption per class`,
          );
        }
        for (let k = 0; k < numClasses; k++) {
          for (const cap of captionChoices(k, classCaptions)) {
            try {
              tokenizeCaption([cap]);
            } catch (e) {
              throw new Error(
                `${(e as Error).message}: raise model.text_len or shorten data.captions`,
              );
            }
          }
        }
      }
    }
    const { train, holdout } = splitHoldout(set.n, cfg.data.holdout, cfg.train.seed, set.rows);
    if (train.length === 0) {
      throw new Error(
        `data.holdout ${cfg.data.holdout} holds out every one of the ${set.n} images of ` +
          `'${source}': lower it, or add images`,
      );
    }
    const sourceCount = set.n;
    let allTrain = train;
    if (cfg.data.extra_sources?.length) {
      const extras = await readExtras(cfg, read, mc.image_size, mc.in_channels);
      for (const x of extras) {
        if (stage === 1 || !x.set.captions) continue;
        try {
          x.set = checkCaptions(x.set);
        } catch (e) {
          throw new Error(`data.extra_sources '${x.source}': ${(e as Error).message}`);
        }
      }
      const joined = joinExtraSources(set, source, holdout, extras, cfg.data.label_field);
      set = joined.set;
      allTrain = Int32Array.from([...train, ...joined.extraTrain]);
      for (const c of joined.counts) {
        log(
          `data.extra_sources: '${c.source}' adds ${c.added} training images (${c.twins} ` +
            `twins of held-out images left out)`,
        );
      }
    }
    return new TrainingData(
      cfg,
      read,
      set,
      allTrain,
      holdout,
      classNames,
      classCaptions,
      sourceCount,
    );
  }

  /** Whether each image has its own caption (an image folder with metadata.jsonl). */
  get hasImageCaptions(): boolean {
    return !!this.set.captions;
  }

  /**
   * The caption training image `index` is drawn with: its own, its class's, or (digits) its word
   * or numeral, drawn from `rng` (which only digits consume).
   */
  captionOf(
    index: number,
    rng: () => number,
    numeralFraction = this.cfg.data.numeral_fraction,
  ): string {
    if (this.set.captions) return this.set.captions[index];
    return captionFor(this.set.labels[index], rng, this.classCaptions, numeralFraction);
  }

  /**
   * The same images at another size (the evaluation classifier's 32×32): an image folder is read
   * again at that size (from its cache); other sources are resized.
   */
  async atSize(size: number, mc: ModelConfig): Promise<ImageSet> {
    if (size === this.set.height) return this.set;
    const { cfg, read } = this;
    const raw = await read(cfg.data.source, readOptions(cfg, size, mc.in_channels));
    const set = prepareImages(raw, size);
    const joined = cfg.data.extra_sources?.length
      ? joinExtraSources(
        set,
        cfg.data.source,
        this.heldOut,
        await readExtras(cfg, read, size, mc.in_channels),
        cfg.data.label_field,
      ).set
      : set;
    // the same images in the same order, so the training indices mean the same: a folder changed
    // since the run read it would pair them with other pictures
    const same = joined.n === this.set.n &&
      (!joined.files || !this.set.files || joined.files.every((f, i) => f === this.set.files![i]));
    if (!same) {
      throw new Error(
        `data '${cfg.data.source}' changed while the run read it (${this.set.n} images, now ` +
          `${joined.n}): keep the folder as it is during a run, and start it again`,
      );
    }
    return joined;
  }

  /** Narrows training to the images `keep` says yes to (a quality filter); returns the count. */
  keepOnly(keep: (index: number) => boolean): number {
    this.train = this.train.filter((i) => keep(i));
    if (this.train.length === 0) {
      throw new Error("the quality filter (data.min_score) kept no training image: lower it");
    }
    return this.train.length;
  }
}

/**
 * Every caption of a words model's folder must tokenize (each word in the table, at most text_len
 * tokens): checked before the first step, the first failure named with its file.
 */
function checkWordCaptions(set: ImageSet, tokenizeCaption: (prompts: string[]) => unknown): void {
  const seen = new Set<string>();
  set.captions!.forEach((cap, i) => {
    if (seen.has(cap)) return;
    seen.add(cap);
    try {
      tokenizeCaption([cap]);
    } catch (e) {
      const file = set.files?.[i] ?? `image ${i}`;
      const fix = e instanceof TooManyTokensError
        ? "shorten the caption, or raise model.text_len, which counts words with " +
          "model.text_encoder: words"
        : "reword the caption: a words model reads only the words of its table (model.word_table)";
      throw new Error(`the caption of '${file}': ${(e as Error).message}: ${fix}`);
    }
  });
}

function readOptions(cfg: Config, size: number, channels: number): ReadImagesOptions {
  return {
    size,
    channels,
    labelField: cfg.data.label_field,
    skipBadImages: cfg.data.skip_bad_images,
  };
}

/** data.extra_sources, each read as the source is and brought to `size`. */
async function readExtras(
  cfg: Config,
  read: ReadImages,
  size: number,
  channels: number,
): Promise<ExtraSource[]> {
  const out: ExtraSource[] = [];
  for (const source of cfg.data.extra_sources ?? []) {
    let raw: ImageSet;
    try {
      raw = await read(source, readOptions(cfg, size, channels));
    } catch (e) {
      // named by its key: the folder alone reads as if data.source were missing
      throw new Error(`data.extra_sources '${source}': ${(e as Error).message}`);
    }
    out.push({ source, set: prepareImages(raw, size) });
  }
  return out;
}

function labelCount(labels: Int32Array): number {
  let m = 0;
  for (const l of labels) m = Math.max(m, l + 1);
  return m;
}
