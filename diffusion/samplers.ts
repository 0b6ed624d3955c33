// Samplers over a trained ε-model. Each takes ε̂(x, t) (guidance already applied) and x_T.
// - ancestral: the DDPM reverse process with "fixed large" variance and dynamic thresholding (§2);
// - DDIM, η = 0 (Song et al. 2021, eq. 12) and DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) on the
//   time points of §4b.

import { lincomb, type Tensor, tidy } from "../kernels/mod.ts";
import { type Schedule, timePoints } from "./schedule.ts";
import { dynamicThreshold } from "../kernels/threshold.ts";

export type EpsFn = (x: Tensor, t: number) => Tensor;
// the names a config or command line may use are declared with the config keys
export { type SamplerName, SAMPLERS } from "../io/config_schema.ts";

export interface StepInfo {
  step: number;
  total: number;
  t: number;
  x: Tensor;
}

export interface AncestralOptions {
  /** standard normal noise z for the step at t (not called at t = 0) */
  noise: (t: number) => Tensor;
  threshold?: { p: number; c: number } | null;
  /** first t (default T − 1) and last t (default 0) */
  from?: number;
  to?: number;
  onStep?: (s: StepInfo) => void;
}

/** x̂0 from x_t and ε̂: √(1/ᾱ_t)·x_t − √(1/ᾱ_t − 1)·ε̂. */
function predictX0(s: Schedule, x: Tensor, eps: Tensor, t: number): Tensor {
  const ac = s.alphasCumprod[t];
  return lincomb([x, eps], [Math.sqrt(1 / ac), -Math.sqrt(1 / ac - 1)]);
}

/** One ancestral step at t: returns x_{t−1} and the intermediate x̂0's. */
export function ancestralStep(
  s: Schedule,
  x: Tensor,
  eps: Tensor,
  t: number,
  z: Tensor | null,
  threshold: { p: number; c: number } | null,
): { x: Tensor; x0: Tensor; x0t: Tensor; s: Tensor | null } {
  const x0 = predictX0(s, x, eps, t);
  let x0t = x0, sv: Tensor | null = null;
  if (threshold) {
    const r = dynamicThreshold(x0, threshold.p, threshold.c);
    x0t = r.x;
    sv = r.s;
  }
  const terms = [x0t, x];
  const coefs = [s.postC1[t], s.postC2[t]];
  if (t > 0 && z) {
    terms.push(z);
    coefs.push(Math.sqrt(s.varLarge[t]));
  }
  return { x: lincomb(terms, coefs), x0, x0t, s: sv };
}

export function sampleAncestral(s: Schedule, eps: EpsFn, xT: Tensor, o: AncestralOptions): Tensor {
  const from = o.from ?? s.T - 1, to = o.to ?? 0;
  const threshold = o.threshold === undefined ? { p: 0.99, c: 1.7 } : o.threshold;
  let x = xT;
  for (let t = from; t >= to; t--) {
    const prev = x;
    x = tidy(() => {
      const e = eps(prev, t);
      const z = t > 0 ? o.noise(t) : null;
      return ancestralStep(s, prev, e, t, z, threshold).x;
    });
    if (prev !== xT) prev.dispose();
    o.onStep?.({ step: from - t + 1, total: from - to + 1, t, x });
  }
  return x;
}

export interface FastOptions {
  steps: number;
  onStep?: (s: StepInfo) => void;
}

const aOf = (s: Schedule, t: number) => Math.sqrt(s.alphasCumprod[t]);
const sigmaOf = (s: Schedule, t: number) => Math.sqrt(1 - s.alphasCumprod[t]);
const lambdaOf = (s: Schedule, t: number) => Math.log(aOf(s, t) / sigmaOf(s, t));

/** DDIM, η = 0: x_{k+1} = a_{τ_{k+1}}·x̂0_k + σ_{τ_{k+1}}·ε̂_k. */
export function sampleDdim(s: Schedule, eps: EpsFn, xT: Tensor, o: FastOptions): Tensor {
  const tau = timePoints(s.T, o.steps);
  let x = xT;
  for (let k = 0; k < o.steps; k++) {
    const prev = x;
    x = tidy(() => {
      const e = eps(prev, tau[k]);
      const a = aOf(s, tau[k]), sg = sigmaOf(s, tau[k]);
      const a1 = aOf(s, tau[k + 1]), s1 = sigmaOf(s, tau[k + 1]);
      // x̂0 = (x − σ ε̂)/a, folded into one linear combination of x and ε̂
      return lincomb([prev, e], [a1 / a, s1 - a1 * sg / a]);
    });
    if (prev !== xT) prev.dispose();
    o.onStep?.({ step: k + 1, total: o.steps, t: tau[k], x });
  }
  return x;
}

/** DPM-Solver++(2M): data prediction, multistep order 2, second-order on every step after the first. */
export function sampleDpmSolver(s: Schedule, eps: EpsFn, xT: Tensor, o: FastOptions): Tensor {
  const tau = timePoints(s.T, o.steps);
  let x = xT;
  let prevX0: Tensor | null = null;
  let prevH = 0;
  for (let k = 0; k < o.steps; k++) {
    const t = tau[k], t1 = tau[k + 1];
    const xk = x;
    const h = lambdaOf(s, t1) - lambdaOf(s, t);
    const x0 = tidy(() => {
      const e = eps(xk, t);
      return lincomb([xk, e], [1 / aOf(s, t), -sigmaOf(s, t) / aOf(s, t)]);
    });
    const lead = sigmaOf(s, t1) / sigmaOf(s, t);
    const phi = -aOf(s, t1) * Math.expm1(-h); // −a_{t+1}(e^{−h} − 1)
    if (!prevX0) {
      x = lincomb([xk, x0], [lead, phi]);
    } else {
      const r = prevH / h;
      // D = (1 + 1/(2r))·x̂0_k − (1/(2r))·x̂0_{k−1}
      x = lincomb([xk, x0, prevX0], [lead, phi * (1 + 1 / (2 * r)), -phi / (2 * r)]);
      prevX0.dispose();
    }
    prevX0 = x0;
    prevH = h;
    if (xk !== xT) xk.dispose();
    o.onStep?.({ step: k + 1, total: o.steps, t, x });
  }
  prevX0?.dispose();
  return x;
}
