// What a training run reads: the configured data set at the model's size and channels, its
// training and held-out split, the class names, and the caption each training image is drawn
// with (docs/spec.md §1): an image folder's own caption, a class's caption, or a digit's word or
// numeral.

import { checkCaptionLengths } from "../io/caption_length.ts";
import type { Config } from "../io/config.ts";
import { type ImageSet, loadSource, prepareImages, splitHoldout } from "../io/data.ts";
import { captionChoices, captionFor, defaultCaptions, MNIST_WORDS } from "../io/captions.ts";
import { requireClasses } from "../io/image_folder.ts";
import type { ModelConfig } from "../model/config.ts";
import { normalizePrompt, tokenize } from "../model/tokenizer.ts";

export class TrainingData {
  private constructor(
    private readonly cfg: Config,
    /** the images at the model's size in [-1, 1], with labels (and captions for a folder) */
    readonly set: ImageSet,
    /** indices of the training images; a quality filter may narrow them (keepOnly) */
    public train: Int32Array,
    readonly heldOut: Int32Array,
    /** the classes by label: a folder's, the config's captions, or the digits' words */
    readonly classNames: readonly string[],
    /** one caption per class (the config's or the data set's), or null */
    readonly classCaptions: readonly string[] | null,
  ) {}

  /**
   * Loads `cfg.data.source` for a model `mc` trained at `stage`; checks before any step that every
   * caption fits the tokenizer and that the classes fit the model.
   */
  static async load(
    cfg: Config,
    mc: ModelConfig,
    stage: 1 | 2 | 3,
    tokenizeCaption: (prompts: string[]) => unknown = (p) => tokenize(p, mc.text_len),
  ): Promise<TrainingData> {
    const source = cfg.data.source;
    const raw = await loadSource(source, {
      size: mc.image_size,
      channels: mc.in_channels,
      labelField: cfg.data.label_field,
      skipBadImages: cfg.data.skip_bad_images,
    });
    if (raw.channels !== mc.in_channels) {
      throw new Error(
        `data '${source}' has ${raw.channels} channel(s) but model.in_channels is ${mc.in_channels}`,
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
    if (stage > 1) {
      if (set.captions && mc.text_encoder === "words") {
        checkWordCaptions(set, tokenizeCaption);
      } else if (set.captions) {
        set = checkCaptionLengths(set, mc.text_len, {
          normalize: normalizePrompt,
          truncate: cfg.data.truncate_captions,
        });
      } else {
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
    const { train, holdout } = splitHoldout(set.n, cfg.data.holdout, cfg.train.seed);
    return new TrainingData(cfg, set, train, holdout, classNames, classCaptions);
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
    const raw = await loadSource(this.cfg.data.source, {
      size,
      channels: mc.in_channels,
      labelField: this.cfg.data.label_field,
      skipBadImages: this.cfg.data.skip_bad_images,
    });
    return prepareImages(raw, size);
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
      throw new Error(
        `the caption of '${file}': ${(e as Error).message} (model.text_len counts words with ` +
          `model.text_encoder: words)`,
      );
    }
  });
}

function labelCount(labels: Int32Array): number {
  let m = 0;
  for (const l of labels) m = Math.max(m, l + 1);
  return m;
}
