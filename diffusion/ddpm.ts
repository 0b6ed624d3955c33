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

/**
 * Min-SNR-γ weight of an ε-prediction loss term (Hang et al. 2023, eq. 9): min(SNR_t, γ) / SNR_t,
 * SNR_t = ᾱ_t / (1 − ᾱ_t). It leaves the noisy steps, where a sample's global shape and class are
 * decided, at weight 1 and scales down the nearly clean ones, whose large ε errors otherwise
 * dominate the gradient.
 */
export function minSnrWeight(s: Schedule, t: number, gamma: number): number {
  const snr = s.alphasCumprod[t] / (1 - s.alphasCumprod[t]);
  return Math.min(snr, gamma) / snr;
}

/**
 * ε-prediction loss: MSE(ε, ε̂(x_t, t)), averaged over the batch; with `minSnrGamma` > 0 each
 * sample's term carries its min-SNR-γ weight.
 */
export function epsLoss(
  s: Schedule,
  model: (xt: Tensor, t: ArrayLike<number>) => Tensor,
  x0: Tensor,
  t: ArrayLike<number>,
  eps: Tensor,
  minSnrGamma = 0,
): Tensor {
  const xt = qSample(s, x0, t, eps);
  const pred = model(xt, t);
  if (!(minSnrGamma > 0)) return mseLoss(pred, eps);
  // Σ w_b·(ε̂ − ε)² = Σ (√w_b·ε̂ − √w_b·ε)²: scale both sides and keep the one MSE kernel
  const B = x0.shape[0];
  const r = tensor(
    Float32Array.from({ length: B }, (_, b) => Math.sqrt(minSnrWeight(s, t[b], minSnrGamma))),
    [B, ...x0.shape.slice(1).map(() => 1)],
  );
  return mseLoss(mul(pred, r), mul(eps, r));
}
