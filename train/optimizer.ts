// The optimiser of a run, from its config (docs/spec.md §5): AdamW (kernels/optim.ts adamW) with
// the config's betas, on the learning rate, weight decay and gradient clipping of every step, read
// off the config and its phases (train/lr_schedule.ts lrAt, io/config_schema.ts configAt). The trainer and the benchmark of
// its step build it here, so the step the benchmark times is the one a run takes.

import { type Adam, adamW, type Tensor } from "../kernels/mod.ts";
import { type Config, configAt } from "../io/config_schema.ts";
import { lrAt } from "./lr_schedule.ts";

/** AdamW over `params` as `cfg` trains them. */
export function optimizerFor(params: readonly Tensor[], cfg: Config): Adam {
  const tc = cfg.train;
  return adamW(params, {
    lr: tc.lr,
    betas: [tc.beta1, tc.beta2],
    weightDecay: tc.weight_decay,
    warmupSteps: tc.warmup_steps,
    clipNorm: tc.clip_norm,
    schedule: (t) => lrAt(cfg, t),
    // step t is taken once t − 1 steps are done, as lrAt counts
    settings: (t) => {
      const now = configAt(cfg, t - 1).train;
      return { weightDecay: now.weight_decay, clipNorm: now.clip_norm };
    },
  });
}
