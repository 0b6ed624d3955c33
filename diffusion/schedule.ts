// The DDPM noise schedule (Ho et al. 2020, §2 and §4), in float64 (docs/spec.md §2).

import { DEFAULT_CONFIG, parseConfigObject, type Prediction } from "../io/config_schema.ts";

export type { Prediction };

export interface Schedule {
  T: number;
  betas: Float64Array;
  alphas: Float64Array;
  /** ᾱ_t = ∏_{s≤t} α_s */
  alphasCumprod: Float64Array;
  /** ᾱ_{t−1}, with ᾱ_{−1} = 1 */
  alphasCumprodPrev: Float64Array;
  /** posterior mean coefficients of x̂0 and x_t (Ho et al. eq. 7) */
  postC1: Float64Array;
  postC2: Float64Array;
  /** "fixed large" variance: σ²_t = β_t, σ²_0 = β̃_1 */
  varLarge: Float64Array;
  /**
   * what the model trained on this schedule predicts (ε, x0 or v): part of the process a sampler
   * must know, as diffusers' schedulers carry `prediction_type`
   */
  prediction: Prediction;
  /**
   * what a model of Haar bands predicts of its detail bands, the last three quarters of its
   * channels (model/wavelet.ts), where it differs from `prediction` (absent where it does not)
   */
  detailPrediction?: Prediction;
}

/**
 * The schedule a checkpoint's model was trained with: the `diffusion` section of its
 * `train_config` metadata (snr_shift included), else the defaults.
 */
export function checkpointSchedule(metadata: Record<string, string>, name?: string): Schedule {
  return configSchedule(checkpointDiffusion(metadata, name));
}

const D = DEFAULT_CONFIG.diffusion;

/**
 * The keys of a config's `diffusion` section that configSchedule reads: the process a model is
 * trained on, which a resumed run must keep.
 */
export const SCHEDULE_KEYS = [
  "timesteps",
  "beta_start",
  "beta_end",
  "snr_shift",
  "prediction",
  "detail_prediction",
] as const;

/**
 * The `diffusion` section a checkpoint recorded, the defaults for what it lacks, checked as a
 * config file's is: the metadata is untrusted, and its timesteps size the schedule's arrays.
 */
export function checkpointDiffusion(
  metadata: Record<string, string>,
  name = "checkpoint",
): typeof D {
  if (!metadata.train_config) return { ...D };
  let recorded: Record<string, Record<string, unknown> | undefined>;
  try {
    recorded = JSON.parse(metadata.train_config) ?? {};
  } catch {
    throw new Error(`${name}: its train_config metadata is not valid JSON`);
  }
  const d = recorded.diffusion;
  if (d === undefined) return { ...D };
  // checked with the model's wavelet beside it (what a detail_prediction may be depends on it),
  // and with the run's own sampler and steps, which are checked against timesteps (the defaults'
  // would refuse a run of few timesteps)
  const recordedKeys = (section: string, keys: string[]) =>
    Object.fromEntries(keys.flatMap((k) => {
      const v = recorded[section]?.[k];
      return v === undefined ? [] : [[k, v]];
    }));
  const doc = {
    diffusion: d,
    model: recordedKeys("model", ["wavelet"]),
    sample: recordedKeys("sample", ["sampler", "steps"]),
  };
  return parseConfigObject(doc, `of ${name}`).diffusion;
}

/** The schedule a config's `diffusion` section names (the defaults for what it lacks). */
export function configSchedule(d: Partial<typeof D>): Schedule {
  const s = linearSchedule(d.timesteps, d.beta_start, d.beta_end);
  const shifted = d.snr_shift === undefined || d.snr_shift === 1
    ? s
    : shiftedSchedule(s, d.snr_shift);
  const prediction = d.prediction ?? D.prediction, detail = d.detail_prediction ?? "same";
  return {
    ...shifted,
    prediction,
    ...(detail !== "same" && detail !== prediction && { detailPrediction: detail }),
  };
}

/**
 * `s` with its signal-to-noise ratio ᾱ/(1 − ᾱ) divided by `k` at every t: ᾱ' = ᾱ / (k(1 − ᾱ) + ᾱ),
 * and the betas that multiply up to it, β'_t = 1 − ᾱ'_t / ᾱ'_{t−1}. A larger image keeps more of
 * itself recoverable at the same ᾱ; SNR/k with k = (side ratio)² restores each t's meaning
 * (Hoogeboom et al. 2023, "simple diffusion"; Chen 2023).
 */
export function shiftedSchedule(s: Schedule, k: number): Schedule {
  if (!(k > 0) || !Number.isFinite(k)) throw new Error(`snr_shift must be > 0, got ${k}`);
  const ac = s.alphasCumprod.map((a) => a / (k * (1 - a) + a));
  return fromBetas(ac.map((a, t) => 1 - a / (t === 0 ? 1 : ac[t - 1])), s.prediction);
}

/** Linear betas from 1e-4·(1000/T) to 0.02·(1000/T) (the config's defaults). */
export function linearSchedule(
  T: number = D.timesteps,
  betaStart: number = D.beta_start,
  betaEnd: number = D.beta_end,
): Schedule {
  const scale = 1000 / T;
  const b0 = betaStart * scale, b1 = betaEnd * scale;
  const betas = new Float64Array(T);
  for (let i = 0; i < T; i++) betas[i] = T === 1 ? b0 : b0 + (b1 - b0) * i / (T - 1);
  return fromBetas(betas);
}

/** ᾱ, the posterior coefficients and variances of a schedule's betas. */
function fromBetas(betas: Float64Array, prediction: Prediction = D.prediction): Schedule {
  const T = betas.length;
  const alphas = betas.map((b) => 1 - b);
  const ac = new Float64Array(T);
  let p = 1;
  for (let i = 0; i < T; i++) ac[i] = p *= alphas[i];
  const acPrev = new Float64Array(T);
  for (let i = 0; i < T; i++) acPrev[i] = i === 0 ? 1 : ac[i - 1];
  const postC1 = new Float64Array(T), postC2 = new Float64Array(T), postVar = new Float64Array(T);
  for (let i = 0; i < T; i++) {
    postC1[i] = betas[i] * Math.sqrt(acPrev[i]) / (1 - ac[i]);
    postC2[i] = (1 - acPrev[i]) * Math.sqrt(alphas[i]) / (1 - ac[i]);
    postVar[i] = betas[i] * (1 - acPrev[i]) / (1 - ac[i]);
  }
  const varLarge = new Float64Array(T);
  for (let i = 0; i < T; i++) varLarge[i] = i === 0 ? (T > 1 ? postVar[1] : betas[0]) : betas[i];
  return {
    T,
    betas,
    alphas,
    alphasCumprod: ac,
    alphasCumprodPrev: acPrev,
    postC1,
    postC2,
    varLarge,
    prediction,
  };
}

/**
 * Time points of the fast samplers: τ_k = floor((T − 1)(1 − k/S) + 1/2), evaluated exactly in
 * integers as ⌊(2(T − 1)(S − k) + S) / (2S)⌋, k = 0 … S (docs/spec.md §4b).
 */
export function timePoints(T: number, S: number): number[] {
  if (!Number.isInteger(S) || S < 1 || S > T - 1) {
    throw new Error(`sampler steps must be an integer in 1..${T - 1}, got ${S}`);
  }
  const out: number[] = [];
  for (let k = 0; k <= S; k++) out.push(Math.floor((2 * (T - 1) * (S - k) + S) / (2 * S)));
  return out;
}
