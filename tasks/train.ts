// deno task train:stage1 / train:stage2 / train:stage3 — PixArt-α's three stages
// (docs/spec.md §5, §7): arguments in, the training loop (train/trainer.ts) into a folder
// (train/folder_run.ts), progress out.

import { join } from "node:path";
import { configName, loadConfig } from "../io/config.ts";
import { fail, parseCli, runTask } from "./cli.ts";
import {
  applyTrainFlags,
  endTraining,
  runTraining,
  TRAIN_FLAGS,
  TRAIN_FLAGS_USAGE,
  TRAIN_PHASES_USAGE,
  TRAIN_SIGNALS_USAGE,
} from "./train_flags.ts";

const USAGE = `
Trains PixArt-α: stage 1 (class-conditional), stage 2 (text, initialised from stage 1) or
stage 3 (the stage-2 model at a higher resolution on curated images).

  deno task train:stage1 [flags]   deno task train:stage2 [flags]   deno task train:stage3 [flags]

  --config PATH       YAML config (default configs/small_stage1.yaml / small_stage2.yaml /
                      emoji_stage3.yaml)
  --data PATH         a folder of images (with metadata.jsonl, or one subfolder per class) or of
                      IDX files; default: the config's data.source
  --out DIR           output folder (default output/<config name>)
  --init-from PATH    stages 2 and 3: the earlier stage's checkpoint, or a folder holding it
                      (default: the newest in the config's train.init_from folder)
${TRAIN_FLAGS_USAGE}

${TRAIN_PHASES_USAGE}

${TRAIN_SIGNALS_USAGE}
`;

const DEFAULT_CONFIGS = {
  1: "configs/small_stage1.yaml",
  2: "configs/small_stage2.yaml",
  3: "configs/emoji_stage3.yaml",
} as const;

let exitCode = 0;
await runTask(async () => {
  const a = parseCli(Deno.args, {
    ...TRAIN_FLAGS,
    stage: { type: "string" },
    "init-from": { type: "string" },
  }, USAGE);
  const stage = a.stage === "1" ? 1 : a.stage === "2" ? 2 : a.stage === "3" ? 3 : null;
  if (!stage) fail("--stage must be 1, 2 or 3");
  const configPath = (a.config as string) ?? DEFAULT_CONFIGS[stage];
  const cfg = loadConfig(configPath, (a.set as string[]) ?? []);
  applyTrainFlags(cfg, a);
  exitCode = await runTraining(cfg, a, {
    stage,
    out: (a.out as string) ?? join("output", configName(configPath)),
    initFrom: a["init-from"] as string | undefined,
  });
});
endTraining();
Deno.exit(exitCode);
