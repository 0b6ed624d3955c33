// One optimisation step, the same for every model this engine trains (the diffusion transformer,
// the evaluation classifier, the benchmarks): the loss's forward pass, backward, Adam with its
// clipping and learning-rate schedule, then the EMA of the weights.

import { backward } from "./autograd.ts";
import { add, mul } from "./elementwise.ts";
import { axpy } from "./vector.ts";
import type { Ema } from "./ema.ts";
import type { FiniteWatch } from "./finite.ts";
import type { Adam } from "./optim.ts";
import { sum } from "./reduce.ts";
import { concat, reshape } from "./shape.ts";
import { type Tensor, tidy } from "./tensor.ts";

export interface StepParts {
  opt: Adam;
  /** the EMA of the weights, updated after the optimiser (none: no average kept) */
  ema?: Ema | null;
  /** the loss is added into this [1] tensor (for averages read every few steps, not each step) */
  lossSum?: Tensor | null;
  /** records the first step whose loss or gradient norm was not finite (no readback) */
  watch?: FiniteWatch | null;
}

/**
 * Records one step: `loss` builds the forward pass and returns the scalar loss. `n` is the number
 * of steps taken before this one (the EMA's warm-up and the watch's step are n + 1). Nothing is
 * read back; everything made on the way is freed.
 */
export function trainStep(loss: () => Tensor, n: number, parts: StepParts): void {
  tidy(() => {
    const l = loss();
    backward(l);
    if (parts.lossSum) axpy(parts.lossSum, l, 1);
    const norm = parts.opt.step({ returnNorm: !!parts.watch });
    if (parts.watch) parts.watch.watch(n + 1, l, norm!);
    parts.opt.zeroGrad();
    parts.ema?.update(n);
  });
}

/**
 * The same step, but it first reads back the loss and the gradient norm and skips the update
 * when either is not finite (the step still counts for the learning-rate schedule). Costs one
 * GPU round trip per step. Returns whether the update was applied.
 */
export async function trainStepOrSkip(
  loss: () => Tensor,
  n: number,
  parts: StepParts,
): Promise<boolean> {
  const { l, scalars } = tidy(() => {
    const l = loss();
    backward(l);
    const norm = gradSquaredNorm(parts.opt.params);
    return { l, scalars: concat([reshape(l, [1]), reshape(norm, [1])], 0) };
  });
  const [lv, sq] = await scalars.read();
  scalars.dispose();
  if (!Number.isFinite(lv) || !Number.isFinite(sq)) {
    l.dispose();
    parts.opt.zeroGrad();
    parts.opt.skipStep();
    return false;
  }
  tidy(() => {
    // only an applied step's loss is summed: one NaN would make the window's mean NaN
    if (parts.lossSum) axpy(parts.lossSum, l, 1);
    l.dispose();
    parts.opt.step();
    parts.opt.zeroGrad();
    parts.ema?.update(n);
  });
  return true;
}

/** Σ‖g‖² over the parameters' gradients (a scalar tensor; ∞ or NaN when one of them is). */
function gradSquaredNorm(params: readonly Tensor[]): Tensor {
  let total: Tensor | null = null;
  for (const p of params) {
    if (!p.grad) continue;
    const s = sum(mul(p.grad, p.grad));
    total = total ? add(total, s) : s;
  }
  if (!total) throw new Error("trainStepOrSkip: no parameter has a gradient");
  return total;
}
