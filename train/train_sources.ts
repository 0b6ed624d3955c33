// What a training run reads besides its own checkpoints: the images of its data source, a words
// model's word table, the earlier stage's checkpoint, the lesson's grid prompts, and (where the
// evaluation classifier can be trained and cached) its evaluation. The command line reads them
// from files (train/folder_run.ts); the web page from what it downloaded and what the user chose.

import type { ImageSet } from "../io/image_set.ts";
import type { Config } from "../io/config_schema.ts";
import type { WordTable } from "../io/word_table.ts";
import type { ModelConfig } from "../model/config.ts";
import type { PixArt } from "../model/pixart.ts";
import type { Schedule } from "../diffusion/schedule.ts";
import type { ReadImagesOptions, TrainingData } from "./data.ts";
import type { NamedCheckpoint } from "./model_init.ts";

/** What the trainer logs for one evaluation (a JSON-serialisable summary). */
export type EvalRecord = Record<string, unknown>;

export interface Evaluator {
  /** frees what the evaluation keeps between runs (classifier features, reference) */
  dispose?(): void;
  /** Samples with `model` and scores; the summary for the log and a one-line description. */
  run(model: PixArt, onProgress?: (done: number, total: number) => void): Promise<{
    record: EvalRecord;
    line: string;
  }>;
}

/** The stage-3 quality filter and the periodic evaluation (train.eval_every), as set up once. */
export interface RunEvaluation {
  /** Stage 3 with data.min_score: narrows the training images to the confident ones. */
  curate(data: TrainingData): Promise<void>;
  /** The periodic evaluation of this run, or null when it has none. */
  evaluator(data: TrainingData, schedule: Schedule): Promise<Evaluator | null>;
}

export interface TrainSources {
  /**
   * The images of `source` (data.source, or one of data.extra_sources) in [0, 1] with their
   * labels (and captions, class names, files).
   */
  readImages(source: string, options: ReadImagesOptions): Promise<ImageSet>;
  /** A words model's table (model.word_table), or null for a model that reads bytes. */
  wordTable(mc: ModelConfig): Promise<WordTable | null>;
  /** Stages 2 and 3 (unless train.from_scratch): the checkpoint of the stage before. */
  earlierStage(stage: 2 | 3): NamedCheckpoint;
  /** The 64 prompts of the digits' sample grid (configs/lesson_prompts.txt, grid order). */
  lessonPrompts(): string[];
  /** The evaluation of a run of `cfg` with model `mc`; absent where there is none. */
  evaluation?(cfg: Config, mc: ModelConfig): RunEvaluation;
}
