// DDPM training objective (Ho et al. 2020, Alg. 1): x_t = √ᾱ_t·x0 + √(1 − ᾱ_t)·ε, and the model is
// trained to predict ε — or, with `diffusion.prediction`, the clean image x0 or the velocity
// v = √ᾱ_t·ε − √(1 − ᾱ_t)·x0 (Salimans & Ho 2022, §4). The three are affine in one another at a
// given x_t, so a sampler reads every model through ε̂ (epsFromOutput), and the loss weights each so
// that its effective weight in ε-space is the same min-SNR-γ weight: only the parameterisation
// changes, not the objective (Hang et al. 2023, §3.3). A model of Haar bands may predict its
// detail bands in another of the three (`diffusion.detail_prediction`): each band is then read in
// its own, under the same objective.

import { add, lincomb, mseLoss, mul, type Tensor, tensor } from "../kernels/mod.ts";
import type { Prediction } from "../io/config_schema.ts";
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

const snrOf = (s: Schedule, t: number) => s.alphasCumprod[t] / (1 - s.alphasCumprod[t]);

/**
 * Min-SNR-γ weight of an ε-prediction loss term (Hang et al. 2023, eq. 9): min(SNR_t, γ) / SNR_t,
 * SNR_t = ᾱ_t / (1 − ᾱ_t). It leaves the noisy steps, where a sample's global shape and class are
 * decided, at weight 1 and scales down the nearly clean ones, whose large ε errors otherwise
 * dominate the gradient.
 */
export function minSnrWeight(s: Schedule, t: number, gamma: number): number {
  const snr = snrOf(s, t);
  return Math.min(snr, gamma) / snr;
}

/**
 * The loss weight of a term at t in the prediction's own space; γ = 0 is the plain MSE there.
 * With γ > 0 it is the min-SNR-γ weight carried over: |ε̂ − ε|² = SNR·|x̂0 − x0|² = SNR/(SNR + 1)·
 * |v̂ − v|² at a fixed x_t, so min(SNR, γ)/SNR in ε becomes min(SNR, γ) for x0 and
 * min(SNR, γ)/(SNR + 1) for v (Hang et al. 2023, eqs. 9–11).
 */
export function lossWeight(
  s: Schedule,
  t: number,
  gamma: number,
  prediction: Prediction = s.prediction,
): number {
  if (!(gamma > 0)) return 1;
  const snr = snrOf(s, t), m = Math.min(snr, gamma);
  return prediction === "sample" ? m : prediction === "v_prediction" ? m / (snr + 1) : m / snr;
}

/** Whether the model's whole output is ε̂ (no conversion for the samplers). */
export function predictsEps(s: Schedule): boolean {
  return s.prediction === "epsilon" && (s.detailPrediction ?? "epsilon") === "epsilon";
}

/**
 * `f` of each band's prediction, each on its channels of a tensor shaped `shape` [B, C, …]: one
 * prediction for all, or the low band's on the first quarter of the channels and the detail
 * bands' on the rest (model/wavelet.ts lays them out so).
 */
function byBand(s: Schedule, shape: readonly number[], f: (p: Prediction) => Tensor): Tensor {
  const detail = s.detailPrediction;
  if (!detail) return f(s.prediction);
  const C = shape[1], ones = shape.slice(2).map(() => 1);
  const band = (low: boolean) =>
    tensor(Float32Array.from({ length: C }, (_, c) => (c < C / 4) === low ? 1 : 0), [
      1,
      C,
      ...ones,
    ]);
  return add(mul(f(s.prediction), band(true)), mul(f(detail), band(false)));
}

/**
 * The training target at per-sample t for x0 and ε: ε, x0, or v = √ᾱ·ε − √(1 − ᾱ)·x0, as each
 * band predicts.
 */
export function predictionTarget(
  s: Schedule,
  x0: Tensor,
  t: ArrayLike<number>,
  eps: Tensor,
): Tensor {
  return byBand(s, x0.shape, (p) => {
    if (p === "epsilon") return eps;
    if (p === "sample") return x0;
    const B = x0.shape[0], lead = [B, ...x0.shape.slice(1).map(() => 1)];
    const a = Float32Array.from(t, (tb) => Math.sqrt(s.alphasCumprod[tb]));
    const sg = Float32Array.from(t, (tb) => -Math.sqrt(1 - s.alphasCumprod[tb]));
    return add(mul(x0, tensor(sg, lead)), mul(eps, tensor(a, lead)));
  });
}

/**
 * ε̂ from a model output at one timestep t, for every x_t of the batch: the output itself (ε),
 * (x_t − √ᾱ·x̂0)/√(1 − ᾱ) (x0), or √(1 − ᾱ)·x_t + √ᾱ·v̂ (v), as each band predicts. Samplers read
 * every model this way.
 */
export function epsFromOutput(s: Schedule, xt: Tensor, out: Tensor, t: number): Tensor {
  if (predictsEps(s)) return out;
  const a = Math.sqrt(s.alphasCumprod[t]), sg = Math.sqrt(1 - s.alphasCumprod[t]);
  return byBand(s, xt.shape, (p) => {
    if (p === "epsilon") return out;
    if (p === "sample") return lincomb([xt, out], [1 / sg, -a / sg]);
    return lincomb([xt, out], [sg, a]);
  });
}

/** One training batch's noise: the images, their timesteps and the noise that is added. */
export interface NoisedBatch {
  x0: Tensor;
  t: ArrayLike<number>;
  eps: Tensor;
}

/**
 * The diffusion loss of docs/spec.md §5: MSE between the model's output on x_t and its target (each
 * band's, predictionTarget), averaged over the batch, each term carrying `lossWeight` (min-SNR-γ
 * for γ > 0) of its sample's t and its band's prediction. `keep` [B·C·H·W] (1 = counted, 0 = left
 * out), when given, leaves out pixels — the masked tokens of a masked-training step (MaskDiT, Zheng
 * et al. 2023) — and the mean is then over the kept ones.
 */
export function diffusionLoss(
  s: Schedule,
  model: (xt: Tensor, t: ArrayLike<number>) => Tensor,
  batch: NoisedBatch,
  minSnrGamma = 0,
  keep?: Uint8Array,
): Tensor {
  const { x0, t, eps } = batch;
  const xt = qSample(s, x0, t, eps);
  const pred = model(xt, t);
  const target = predictionTarget(s, x0, t, eps);
  if (!(minSnrGamma > 0) && !keep) return mseLoss(pred, target);
  if (keep && keep.length !== x0.size) {
    throw new Error(`diffusionLoss: keep has ${keep.length} entries for ${x0.size} values`);
  }
  // √w of each sample (and band): Σ w·(p − y)² = Σ (√w·p − √w·y)², so scale both sides and keep
  // the one MSE kernel
  const [B, C] = x0.shape, plane = x0.size / (B * C);
  const kinds = s.detailPrediction ? [s.prediction, s.detailPrediction] : [s.prediction];
  const r = Array.from(t, (tb) => kinds.map((p) => Math.sqrt(lossWeight(s, tb, minSnrGamma, p))));
  const rootOf = (b: number, c: number) => r[b][kinds.length > 1 && c >= C / 4 ? 1 : 0];
  if (!keep) {
    const w = Float32Array.from({ length: B * C }, (_, i) => rootOf(Math.floor(i / C), i % C));
    const wt = tensor(w, [B, C, ...x0.shape.slice(2).map(() => 1)]);
    return mseLoss(mul(pred, wt), mul(target, wt));
  }
  // the left-out pixels weigh 0 and the kept ones N/kept more, so the mean is over the kept
  const kept = keep.reduce((n, k) => n + (k ? 1 : 0), 0);
  const up = Math.sqrt(x0.size / Math.max(1, kept));
  const w = Float32Array.from(keep, (k, i) => {
    const row = Math.floor(i / plane);
    return k ? rootOf(Math.floor(row / C), row % C) * up : 0;
  });
  const wt = tensor(w, x0.shape);
  return mseLoss(mul(pred, wt), mul(target, wt));
}

/** The ε-prediction loss (diffusionLoss of an ε model), kept for the engine's own examples. */
export function epsLoss(
  s: Schedule,
  model: (xt: Tensor, t: ArrayLike<number>) => Tensor,
  x0: Tensor,
  t: ArrayLike<number>,
  eps: Tensor,
  minSnrGamma = 0,
): Tensor {
  const e: Schedule = { ...s, prediction: "epsilon", detailPrediction: undefined };
  return diffusionLoss(e, model, { x0, t, eps }, minSnrGamma);
}
