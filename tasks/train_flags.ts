// What the training tasks share (train:stage1/2/3 and train:lora): the run's flags, their help
// lines, how they change the config, and running the trainer with its progress and stop signals.

import type { Config } from "../io/config.ts";
import { checkConfig, SCHEMA } from "../io/config_schema.ts";
import { type FolderTrainOptions, trainInFolder } from "../train/folder_run.ts";
import { StopSignal } from "../train/stop_signal.ts";
import { fail, intFlag, numFlag, type Options, status } from "./cli.ts";

/** The flags every training task takes. */
export const TRAIN_FLAGS: Options = {
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
  keep: { type: "string" },
  "no-grid": { type: "boolean" },
  set: { type: "string", multiple: true },
};

/** Their help lines after --config and --data, which each task words itself. */
export const TRAIN_FLAGS_USAGE = `
  --steps N           total optimiser steps (config train.steps), where the config's last
                      learning-rate cycle ends its decay
  --batch-size N      images per step (config train.batch_size)
  --lr X              peak learning rate (config train.lr): of the first cycle only where a
                      phase sets train.lr for later ones
  --seed N            run seed: init, data order, noise (config train.seed)
  --save-every N      checkpoint every N steps (config train.save_every; 0: only at the end)
  --sample-every N    sample grid every N steps (config train.sample_every; default: with
                      --save-every when that is given)
  --log-every N       read the loss every N steps (config train.log_every)
  --resume            continue the run in --out from its newest checkpoint
  --fresh             move the run in --out aside (to DIR.old-N) and start over
  --keep N            checkpoints of this run to keep (default 3; 0 keeps all)
  --no-grid           skip the sample grids
  --set KEY=VALUE     override any config key, e.g. --set train.ema_decay=0.99 (repeatable);
                      as with the flags above, a phase that sets the key replaces it from its step`
  .slice(1);

/** What a config's phases do to a run, above the signals in each task's help. */
export const TRAIN_PHASES_USAGE = `
A config's phases change settings from a step on (docs/spec.md §5). One that sets train.lr starts a
new learning-rate cycle: a linear warm-up from 0 over its train.warmup_steps, counted from its first
step; a hold to train.decay_start, a step of the run, not of the cycle (if that is passed, the decay
starts right after the warm-up); and a train.lr_decay to train.min_lr that ends where the next such
phase begins, or at train.steps. Keys a phase does not set keep their values from before it.`
  .slice(1);

/** What a stop signal and a diverging loss do, the last lines of each task's help. */
export const TRAIN_SIGNALS_USAGE = `
A run stopped by Ctrl-C, SIGTERM or SIGHUP saves a checkpoint within a step and exits with 130,
143 or 129; --resume continues it (before the first step, the signal ends it at once). A loss that
stops being finite ends the run with an error naming the step and the last good checkpoint (or,
with train.on_nonfinite: skip, skips such steps).`.slice(1);

/** The training flags' values written into the config (checked: one-line errors). */
export function applyTrainFlags(cfg: Config, a: Record<string, unknown>): void {
  const tc = cfg.train;
  // each flag is checked as its config key is (a --seed past 2^32 trained as another seed)
  const flag = (name: string, key: keyof typeof SCHEMA.train, integer = true) => {
    const v = (integer ? intFlag : numFlag)(a[name], name);
    return v === undefined ? undefined : SCHEMA.train[key].check(
      `train.${key}`,
      v,
      (m) => fail(`--${name}: ${m}`),
    ) as number;
  };
  tc.steps = flag("steps", "steps") ?? tc.steps;
  tc.batch_size = flag("batch-size", "batch_size") ?? tc.batch_size;
  tc.lr = flag("lr", "lr", false) ?? tc.lr;
  tc.seed = flag("seed", "seed") ?? tc.seed;
  tc.save_every = flag("save-every", "save_every") ?? tc.save_every;
  tc.sample_every = flag("sample-every", "sample_every") ??
    (a["save-every"] !== undefined ? tc.save_every : tc.sample_every);
  tc.log_every = flag("log-every", "log_every") ?? tc.log_every;
  if (tc.batch_size < 1) fail("--batch-size must be at least 1");
  if (tc.log_every < 1) fail("--log-every must be at least 1");
  if (a.data === "") fail("--data is empty: give a folder, or leave the flag out");
  if (a.data) cfg.data.source = a.data as string;
  checkConfig(cfg, (m) => fail(`with the flags given: ${m}`));
  const unreached = cfg.phases.filter((p) => p.from >= tc.steps).map((p) => p.from);
  if (unreached.length) {
    console.error(
      `note: the run ends at step ${tc.steps}, before the config's phases from step ` +
        `${unreached.join(", ")}`,
    );
  }
}

// listened to once the steps start (train/stop_signal.ts)
const stop = new StopSignal();

/**
 * Runs the trainer with the flags' run options, progress on a terminal and the loss lines
 * elsewhere; returns the process's exit status (a stop signal's, or 0).
 */
export async function runTraining(
  cfg: Config,
  a: Record<string, unknown>,
  o: Pick<FolderTrainOptions, "stage" | "out" | "initFrom" | "lora">,
): Promise<number> {
  const result = await trainInFolder(cfg, {
    ...o,
    resume: !!a.resume,
    fresh: !!a.fresh,
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
  if (!result.interrupted) return 0;
  console.error(`stopped by ${result.interrupted} at step ${result.step}: --resume continues`);
  return stop.exitCode;
}

/** Stops listening for signals (before the process exits). */
export function endTraining(): void {
  stop.dispose();
}
