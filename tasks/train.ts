// deno task train:stage1 / train:stage2 / train:stage3 — PixArt-α's three stages
// (docs/spec.md §5, §7): arguments in, the training loop (train/trainer.ts), progress out.

import { join } from "node:path";
import { configName, loadConfig } from "../io/config.ts";
import { train } from "../train/trainer.ts";
import { StopSignal } from "../train/stop_signal.ts";
import { fail, intFlag, numFlag, parseCli, runTask, status } from "./cli.ts";

const USAGE = `
Trains PixArt-α: stage 1 (class-conditional), stage 2 (text, initialised from stage 1) or
stage 3 (the stage-2 model at a higher resolution on curated images).

  deno task train:stage1 [flags]   deno task train:stage2 [flags]   deno task train:stage3 [flags]

  --config PATH       YAML config (default configs/small_stage1.yaml / small_stage2.yaml /
                      emoji_stage3.yaml)
  --steps N           total optimiser steps (config train.steps)
  --batch-size N      images per step (config train.batch_size)
  --lr X              learning rate (config train.lr)
  --data PATH         a folder of images (with metadata.jsonl, or one subfolder per class) or of
                      IDX files; default: the config's data.source
  --out DIR           output folder (default output/<config name>)
  --seed N            run seed: init, data order, noise (config train.seed)
  --save-every N      checkpoint every N steps (config train.save_every; 0: only at the end)
  --sample-every N    sample grid every N steps (config train.sample_every; default: with
                      --save-every when that is given)
  --log-every N       read the loss every N steps (config train.log_every)
  --resume            continue the run in --out from its newest checkpoint
  --fresh             move the run in --out aside (to DIR.old-N) and start over
  --init-from PATH    stages 2 and 3: the earlier stage's checkpoint, or a folder holding it
                      (default: the newest in the config's train.init_from folder)
  --keep N            checkpoints of this run to keep (default 3; 0 keeps all)
  --no-grid           skip the sample grids
  --set KEY=VALUE     override any config key, e.g. --set model.depth=2 (repeatable)

A run stopped by Ctrl-C, SIGTERM or SIGHUP saves a checkpoint within a step and exits with 130,
143 or 129; --resume continues it (before the first step, the signal ends it at once). A loss that stops being finite ends the run with an error naming the step
and the last good checkpoint (or, with train.on_nonfinite: skip, skips such steps).
`;

const DEFAULT_CONFIGS = {
  1: "configs/small_stage1.yaml",
  2: "configs/small_stage2.yaml",
  3: "configs/emoji_stage3.yaml",
} as const;

// listened to once the steps start (train/stop_signal.ts)
const stop = new StopSignal();
let exitCode = 0;
await runTask(async () => {
  const a = parseCli(Deno.args, {
    stage: { type: "string" },
    config: { type: "string" },
    steps: { type: "string" },
    "batch-size": { type: "string" },
    lr: { type: "string" },
    data: { type: "string" },
    out: { type: "string" },
    seed: { type: "string" },
    "save-every": { type: "string" },
    "sample-every": { type: "string" },
    "log-every": { type: "string" },
    resume: { type: "boolean" },
    fresh: { type: "boolean" },
    "init-from": { type: "string" },
    keep: { type: "string" },
    "no-grid": { type: "boolean" },
    set: { type: "string", multiple: true },
  }, USAGE);
  const stage = a.stage === "1" ? 1 : a.stage === "2" ? 2 : a.stage === "3" ? 3 : null;
  if (!stage) fail("--stage must be 1, 2 or 3");
  const configPath = (a.config as string) ?? DEFAULT_CONFIGS[stage];
  const cfg = loadConfig(configPath, (a.set as string[]) ?? []);
  const tc = cfg.train;
  tc.steps = intFlag(a.steps, "steps") ?? tc.steps;
  tc.batch_size = intFlag(a["batch-size"], "batch-size") ?? tc.batch_size;
  tc.lr = numFlag(a.lr, "lr") ?? tc.lr;
  tc.seed = intFlag(a.seed, "seed") ?? tc.seed;
  tc.save_every = intFlag(a["save-every"], "save-every") ?? tc.save_every;
  tc.sample_every = intFlag(a["sample-every"], "sample-every") ??
    (a["save-every"] !== undefined ? tc.save_every : tc.sample_every);
  tc.log_every = intFlag(a["log-every"], "log-every") ?? tc.log_every;
  if (tc.batch_size < 1) fail("--batch-size must be at least 1");
  if (tc.log_every < 1) fail("--log-every must be at least 1");
  if (a.data) cfg.data.source = a.data as string;
  const result = await train(cfg, {
    stage,
    out: (a.out as string) ?? join("output", configName(configPath)),
    resume: !!a.resume,
    fresh: !!a.fresh,
    initFrom: a["init-from"] as string | undefined,
    keep: intFlag(a.keep, "keep") ?? 3,
    grid: !a["no-grid"],
    stop,
    report: (line, kind = "final") => {
      if (kind === "final" || Deno.stderr.isTerminal()) status(line, kind === "final");
      else if (kind === "log") console.error(line);
    },
  });
  status("", true);
  if (result.skipped) console.error(`${result.skipped} step(s) skipped for a non-finite loss`);
  if (result.interrupted) {
    console.error(`stopped by ${result.interrupted} at step ${result.step}: --resume continues`);
    exitCode = stop.exitCode;
  }
});
stop.dispose();
Deno.exit(exitCode);
