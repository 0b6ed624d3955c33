// The learning rate of every step of a run, from its config: a linear warm-up, a hold, and a
// cosine or linear decay to min_lr ("warm-up, stable, decay"), once per learning-rate cycle. The
// config's own train.* keys make the first cycle; a phase that sets train.lr starts the next, with
// its warm-up counted from the phase's first step and its decay ending where the next cycle begins
// (io/config_schema.ts, Phase). The rate is a function of the step alone, so --resume continues the
// curve exactly.

import { type Config, configAt } from "../io/config_schema.ts";

/** Where each learning-rate cycle of a config begins: 0, then every phase that sets train.lr. */
export function cycleStarts(cfg: Config): number[] {
  return [0, ...cfg.phases.filter((p) => "train.lr" in p.set).map((p) => p.from)];
}

/** The learning rate of step t (1-based, as Adam counts: t − 1 steps are done). */
export function lrAt(cfg: Config, t: number): number {
  const done = t - 1;
  const tc = configAt(cfg, done).train;
  const starts = cycleStarts(cfg);
  let k = starts.length - 1;
  while (k > 0 && starts[k] > done) k--;
  const from = starts[k], end = starts[k + 1] ?? cfg.train.steps;
  const s = t - from; // the step within its cycle, 1-based
  const warm = tc.warmup_steps > 0 ? Math.min(1, s / tc.warmup_steps) : 1;
  const decayStart = Math.max(tc.decay_start, from + tc.warmup_steps);
  if (tc.lr_decay === "constant" || t <= decayStart || decayStart >= end) return tc.lr * warm;
  const p = Math.min(1, (t - decayStart) / (end - decayStart));
  const f = tc.lr_decay === "cosine" ? 0.5 * (1 + Math.cos(Math.PI * p)) : 1 - p;
  return warm * (tc.min_lr + (tc.lr - tc.min_lr) * f);
}

/**
 * Notes on a run that ends before one of its cycles would decay (a short demo of a long recipe):
 * said in one line each rather than an error, and the rate stays where it is.
 */
export function lrNotes(cfg: Config): string[] {
  const out: string[] = [];
  const starts = cycleStarts(cfg);
  starts.forEach((from, k) => {
    const tc = configAt(cfg, from).train;
    const end = starts[k + 1] ?? cfg.train.steps;
    const decayStart = Math.max(tc.decay_start, from + tc.warmup_steps);
    if (tc.lr_decay !== "constant" && decayStart >= end) {
      out.push(
        `note: train.decay_start ${decayStart} is not before the ${
          k + 1 < starts.length ? `next cycle's first step ${end}` : `run's last step ${end}`
        }: the learning rate stays at ${tc.lr} (no ${tc.lr_decay} decay in this cycle)`,
      );
    }
  });
  return out;
}
