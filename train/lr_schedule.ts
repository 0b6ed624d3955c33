// The learning rate of every step of a run, from its config: a linear warm-up, a hold, and a
// cosine or linear decay to min_lr ("warm-up, stable, decay"), once per learning-rate cycle. The
// config's own train.* keys make the first cycle; a phase that sets train.lr starts the next, with
// its warm-up counted from the phase's first step and its decay ending where the next cycle begins
// (io/config_schema.ts, Phase). The rate is a function of the step alone, so --resume continues the
// curve exactly.

import { type Config, configAt, phaseIndexAt, type TrainSection } from "../io/config_schema.ts";

/** Where each learning-rate cycle of a config begins: 0, then every phase that sets train.lr. */
export function cycleStarts(cfg: Config): number[] {
  return [0, ...cfg.phases.filter((p) => "train.lr" in p.set).map((p) => p.from)];
}

/** The learning rate of step t (1-based, as Adam counts: t − 1 steps are done). */
export function lrAt(cfg: Config, t: number): number {
  return lrCurve(cfg)(t);
}

/**
 * lrAt of `cfg` as a function of the step, each phase's settings read once: for going over many
 * steps. It reads `cfg` as it is now.
 */
export function lrCurve(cfg: Config): (t: number) => number {
  const starts = cycleStarts(cfg);
  const settings = new Map<number, TrainSection>();
  return (t) => {
    const done = t - 1, k = phaseIndexAt(cfg, done);
    let tc = settings.get(k);
    if (!tc) settings.set(k, tc = configAt(cfg, done).train);
    return cycleRate(tc, starts, t, cfg.train.steps);
  };
}

/** The settings the curve is made of, as cycleRate reads them (with the cycles' starts). */
export const LR_CURVE_KEYS = [
  "train.lr",
  "train.warmup_steps",
  "train.lr_decay",
  "train.decay_start",
  "train.min_lr",
] as const;

/** The rate of step t in the cycle of `starts` it falls in, under the settings `tc` of step t. */
function cycleRate(tc: TrainSection, starts: number[], t: number, steps: number): number {
  const done = t - 1;
  let k = starts.length - 1;
  while (k > 0 && starts[k] > done) k--;
  const from = starts[k], end = starts[k + 1] ?? steps;
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

/**
 * Where the learning rates of steps 1 … `step` under `cfg` first differ from those under `was`
 * (the config a run recorded, resumed at `step`), or null. A changed key of the curve is named
 * among the settings (io/config_schema.ts settingsChangedBefore); this catches also a curve that
 * its length moved: another train.steps (a run stopped early with --steps, or continued past its
 * end) or a new cycle after `step` ends the decay the run was in at another step.
 */
export function lrChangedBefore(was: Config, cfg: Config, step: number): string | null {
  const [a, b] = [lrCurve(was), lrCurve(cfg)];
  // both curves are flat after their last key, so a checkpoint's step (up to 2^40) is not walked
  const last = Math.min(step, Math.max(lastKeyStep(was), lastKeyStep(cfg)) + 1);
  for (let t = 1; t <= last; t++) {
    const [x, y] = [a(t), b(t)];
    if (Math.abs(x - y) > 1e-12 * Math.max(x, y)) {
      const steps = was.train.steps === cfg.train.steps
        ? ""
        : `; train.steps ${was.train.steps} → ${cfg.train.steps}`;
      return `the learning rate from step ${t} (${x.toExponential(3)} → ${
        y.toExponential(3)
      }${steps})`;
    }
  }
  return null;
}

/** The last step at which the curve of `cfg` may still change: after it the rate is constant. */
function lastKeyStep(cfg: Config): number {
  const keys = [cfg.train.steps, ...cfg.phases.map((p) => p.from)];
  for (const from of cycleStarts(cfg)) {
    const tc = configAt(cfg, from).train;
    keys.push(from + tc.warmup_steps, tc.decay_start);
  }
  return Math.max(...keys);
}
