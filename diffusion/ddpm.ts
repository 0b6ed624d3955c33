// DDPM training objective (Ho et al. 2020, Alg. 1): x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε, and the model
// is trained to predict ε with a mean-squared error.

import { add, mseLoss, mul, type Tensor, tensor } from "../kernels/mod.ts";
import type { Schedule } from "./schedule.ts";

/** Forward process q(x_t | x0) for per-sample timesteps t (host integers). */
export function qSample(s: Schedule, x0: Tensor, t: ArrayLike<number>, eps: Tensor): Tensor {
  const B = x0.shape[0];
  const lead = [B, ...x0.shape.slice(1).map(() => 1)];
  const a = new Float32Array(B), sg = new Float32Array(B);
  for (let b = 0; b < B; b++) {
    a[b] = Math.sqrt(s.alphasCumprod[t[b]]);
    sg[b] = Math.sqrt(1 - s.alphasCumprod[t[b]]);
  }
  return add(mul(x0, tensor(a, lead)), mul(eps, tensor(sg, lead)));
}

/** ε-prediction loss: MSE(ε, ε̂(x_t, t)). */
export function epsLoss(
  s: Schedule,
  model: (xt: Tensor, t: ArrayLike<number>) => Tensor,
  x0: Tensor,
  t: ArrayLike<number>,
  eps: Tensor,
): Tensor {
  const xt = qSample(s, x0, t, eps);
  return mseLoss(model(xt, t), eps);
}
