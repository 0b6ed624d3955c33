// Samplers over a trained ε-model. Each takes ε̂(x, t) (guidance already applied) and x_T.
// - ancestral: the DDPM reverse process with "fixed large" variance and dynamic thresholding (§2);
// - DDIM, η = 0 (Song et al. 2021, eq. 12) and DPM-Solver++(2M) (Lu et al. 2022, Alg. 2) on the
//   time points of §4b;
// - DPM-Solver++(3M) (Lu et al. 2022, §3.3 and App. B) and UniPC (Zhao et al. 2023: the UniP-2
//   predictor with the UniC corrector, B(h) = e^h − 1 "bh2", data prediction), multistep
//   exponential integrators of third order on the same time points, sharing one loop.
// The fast samplers visit the time points they are given (a tail of the usual ones starts from a
// partly noised image), so nothing assumes the first is T − 1. Every sampler passes each step's
// result through `constrain` when given one: inpainting keeps its known region that way
// (diffusion/edit.ts).

import { lincomb, type Tensor, tidy } from "../kernels/mod.ts";
import { type Schedule, timePoints } from "./schedule.ts";
import { dynamicThreshold } from "../kernels/threshold.ts";

export type EpsFn = (x: Tensor, t: number) => Tensor;
// the names a config or command line may use are declared with the config keys
import type { SamplerName } from "../io/config_schema.ts";
export { type SamplerName, SAMPLERS } from "../io/config_schema.ts";

export interface StepInfo {
  step: number;
  total: number;
  t: number;
  x: Tensor;
}

/**
 * Replaces a step's result x, now at timestep `t` (the ancestral sampler's output is at −1), e.g.
 * by one whose known region is the image noised to t. The sampler frees the x it replaces.
 */
export type Constrain = (x: Tensor, t: number) => Tensor;

/** constrain(x, t), freeing x when it was replaced. */
function constrained(constrain: Constrain, x: Tensor, t: number): Tensor {
  const y = tidy(() => constrain(x, t));
  if (y !== x) x.dispose();
  return y;
}

export interface AncestralOptions {
  /** standard normal noise z for the step at t (not called at t = 0) */
  noise: (t: number) => Tensor;
  threshold?: { p: number; c: number } | null;
  /** first t (default T − 1) and last t (default 0); x_T is the state at `from` */
  from?: number;
  to?: number;
  constrain?: Constrain;
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
    if (o.constrain) x = constrained(o.constrain, x, t - 1);
    if (prev !== xT) prev.dispose();
    o.onStep?.({ step: from - t + 1, total: from - to + 1, t, x });
  }
  return x;
}

export interface FastOptions {
  /** steps over timePoints(T, steps) (§4b); one of steps and timePoints */
  steps?: number;
  /**
   * the time points τ_0 > τ_1 > … > τ_S to visit instead, x_T being the state at τ_0 (a tail of
   * timePoints(T, S) starts from an image noised to its first point)
   */
  timePoints?: readonly number[];
  constrain?: Constrain;
  onStep?: (s: StepInfo) => void;
}

/** The time points a fast sampler visits: o.timePoints checked, else timePoints(T, o.steps). */
export function fastTimePoints(s: Schedule, o: FastOptions): number[] {
  if (!o.timePoints) {
    if (o.steps === undefined) throw new Error("a fast sampler needs steps or timePoints");
    return timePoints(s.T, o.steps);
  }
  const tau = [...o.timePoints];
  if (tau.length < 2) throw new Error(`timePoints needs at least 2 points, got ${tau.length}`);
  tau.forEach((t, k) => {
    if (!Number.isInteger(t) || t < 0 || t > s.T - 1 || (k > 0 && t >= tau[k - 1])) {
      throw new Error(
        `timePoints must be integers in 0..${s.T - 1}, strictly decreasing: got ${tau.join(", ")}`,
      );
    }
  });
  if (o.steps !== undefined && o.steps !== tau.length - 1) {
    throw new Error(`steps (${o.steps}) disagrees with ${tau.length} timePoints`);
  }
  return tau;
}

const aOf = (s: Schedule, t: number) => Math.sqrt(s.alphasCumprod[t]);
const sigmaOf = (s: Schedule, t: number) => Math.sqrt(1 - s.alphasCumprod[t]);
const lambdaOf = (s: Schedule, t: number) => Math.log(aOf(s, t) / sigmaOf(s, t));

/** DDIM, η = 0: x_{k+1} = a_{τ_{k+1}}·x̂0_k + σ_{τ_{k+1}}·ε̂_k. */
export function sampleDdim(s: Schedule, eps: EpsFn, xT: Tensor, o: FastOptions): Tensor {
  const tau = fastTimePoints(s, o), steps = tau.length - 1;
  let x = xT;
  for (let k = 0; k < steps; k++) {
    const prev = x;
    x = tidy(() => {
      const e = eps(prev, tau[k]);
      const a = aOf(s, tau[k]), sg = sigmaOf(s, tau[k]);
      const a1 = aOf(s, tau[k + 1]), s1 = sigmaOf(s, tau[k + 1]);
      // x̂0 = (x − σ ε̂)/a, folded into one linear combination of x and ε̂
      return lincomb([prev, e], [a1 / a, s1 - a1 * sg / a]);
    });
    if (o.constrain) x = constrained(o.constrain, x, tau[k + 1]);
    if (prev !== xT) prev.dispose();
    o.onStep?.({ step: k + 1, total: steps, t: tau[k], x });
  }
  return x;
}

/** DPM-Solver++(2M): data prediction, multistep order 2, second-order on every step after the first. */
export function sampleDpmSolver(s: Schedule, eps: EpsFn, xT: Tensor, o: FastOptions): Tensor {
  const tau = fastTimePoints(s, o), steps = tau.length - 1;
  let x = xT;
  let prevX0: Tensor | null = null;
  let prevH = 0;
  for (let k = 0; k < steps; k++) {
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
    if (o.constrain) x = constrained(o.constrain, x, t1);
    if (xk !== xT) xk.dispose();
    o.onStep?.({ step: k + 1, total: steps, t, x });
  }
  prevX0?.dispose();
  return x;
}

// ---------------------------------------------------------------------------------------------
// Multistep exponential integrators of higher order. In data prediction x̂0 = (x − σ ε̂)/a, the
// probability-flow ODE from s to t is exactly x_t = (σ_t/σ_s)·x_s + σ_t ∫_{λ_s}^{λ_t} e^λ x̂0(λ) dλ
// (Lu et al. 2022, eq. 9); the solvers replace x̂0(λ) by a polynomial through the x̂0 of earlier
// steps. Every update is a linear combination of x and those x̂0, its coefficients computed here
// in float64 and applied by one lincomb.

/** The order of each step and what lowers it. */
export interface MultistepOptions extends FastOptions {
  /**
   * first-order last step (and, for DPM-Solver++(3M), second-order second-to-last) under 15
   * steps, as diffusers' lower_order_final does by default: the last step, to t = 0, is the
   * longest in λ, where extrapolating the x̂0 history costs more than it gains (default true)
   */
  lowerOrderFinal?: boolean;
}

export interface UniPcOptions extends MultistepOptions {
  /** the predictor's order p (UniP-p; with the corrector the method is of order p + 1); default 2 */
  order?: number;
  /** apply UniC after each evaluation (default true; false leaves UniP-p alone) */
  corrector?: boolean;
}

/** 1st-order data-prediction step s0 → t (DDIM): coefficients of [x_s0, x̂0_s0]. */
function firstOrder(s: Schedule, t: number, s0: number): number[] {
  const h = lambdaOf(s, t) - lambdaOf(s, s0);
  return [sigmaOf(s, t) / sigmaOf(s, s0), -aOf(s, t) * Math.expm1(-h)];
}

/**
 * DPM-Solver++ multistep step s0 → t of order prev.length (1–3) from the x̂0 at the points
 * prev = [s0, s1, s2] (newest first): coefficients of [x_s0, x̂0_s0, x̂0_s1, x̂0_s2].
 * Order 2 is the 2M update of sampleDpmSolver; order 3 expands x̂0(λ) to second order around
 * λ_s0, D1 ≈ h·x̂0' and D2 ≈ h²·x̂0'' from the divided differences of three x̂0, each term weighted
 * by its exact integral: a_t·(e^{−h} − 1 + h)/h for D1, a_t·(1/2 − (e^{−h} − 1 + h)/h²) for D2
 * (App. B). D2 here is twice the one in the DPM-Solver and diffusers code, (D1_0 − D1_1)/(r0 + r1):
 * that one estimates h²·x̂0''/2, which leaves the step exact only for x̂0 linear in λ and the
 * method second order (tests/solvers_test.ts shows both).
 */
export function dpmSolverPlusPlusCoefs(s: Schedule, t: number, prev: readonly number[]): number[] {
  const [lead, phi] = firstOrder(s, t, prev[0]);
  const lt = lambdaOf(s, t), l0 = lambdaOf(s, prev[0]);
  const h = lt - l0;
  if (prev.length === 1) return [lead, phi];
  const r0 = (l0 - lambdaOf(s, prev[1])) / h;
  if (prev.length === 2) return [lead, phi * (1 + 1 / (2 * r0)), -phi / (2 * r0)];
  if (prev.length !== 3) throw new Error(`DPM-Solver++ order ${prev.length}: use 1 to 3`);
  const r1 = (lambdaOf(s, prev[1]) - lambdaOf(s, prev[2])) / h;
  const at = aOf(s, t), em = Math.expm1(-h);
  const c1 = at * (em / h + 1); // weight of D1
  const c2 = -at * ((em + h) / (h * h) - 0.5); // weight of D2
  // D1_0 = (m0 − m1)/r0, D1_1 = (m1 − m2)/r1; D1 = D1_0 + r0/(r0 + r1)·(D1_0 − D1_1);
  // D2 = 2(D1_0 − D1_1)/(r0 + r1); as coefficients of [m0, m1, m2]
  const d10 = [1 / r0, -1 / r0, 0], d11 = [0, 1 / r1, -1 / r1];
  const w = r0 / (r0 + r1), v = 2 / (r0 + r1);
  const m = [0, 1, 2].map((i) =>
    c1 * (d10[i] + w * (d10[i] - d11[i])) + c2 * v * (d10[i] - d11[i])
  );
  return [lead, phi + m[0], m[1], m[2]];
}

/** x solving A x = b (partial pivoting), for the few-by-few systems of UniPC. */
function solveSmall(A: number[][], b: number[]): number[] {
  const n = b.length, M = A.map((row, i) => [...row, b[i]]);
  for (let c = 0; c < n; c++) {
    let p = c;
    for (let r = c + 1; r < n; r++) if (Math.abs(M[r][c]) > Math.abs(M[p][c])) p = r;
    [M[c], M[p]] = [M[p], M[c]];
    for (let r = c + 1; r < n; r++) {
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  const x = new Array<number>(n).fill(0);
  for (let r = n - 1; r >= 0; r--) {
    let acc = M[r][n];
    for (let k = r + 1; k < n; k++) acc -= M[r][k] * x[k];
    x[r] = acc / M[r][r];
  }
  return x;
}

/**
 * UniPC's shared quantities for a step s0 → t with earlier points prev[1…] (Zhao et al. 2023,
 * Alg. 2 and 3, B(h) = e^h − 1 with h → −h for data prediction): r_k = (λ_{s_k} − λ_s0)/h,
 * hφ_1 = e^{−h} − 1, and the order conditions Σ_k a_k r_k^{i−1} = b_i with
 * b_i = i!·(−h)·φ_{i+1}(−h)/B(−h), i = 1 … p.
 */
function uniPcTerms(s: Schedule, t: number, prev: readonly number[], p: number) {
  const l0 = lambdaOf(s, prev[0]);
  const h = lambdaOf(s, t) - l0, hh = -h;
  const rks = prev.slice(1).map((si) => (lambdaOf(s, si) - l0) / h);
  const hPhi1 = Math.expm1(hh), Bh = Math.expm1(hh);
  const b: number[] = [];
  let hPhiK = hPhi1 / hh - 1, fact = 1;
  for (let i = 1; i <= p; i++) {
    b.push(hPhiK * fact / Bh);
    fact *= i + 1;
    hPhiK = hPhiK / hh - 1 / fact;
  }
  const R = (r: number[]) => r.map((_, i) => r.map((rk) => rk ** i));
  return { rks, b, R, hPhi1, Bh, at: aOf(s, t), lead: sigmaOf(s, t) / sigmaOf(s, prev[0]) };
}

/**
 * UniP-p (bh2) step s0 → t, p = prev.length, from the x̂0 at prev = [s0, s1, …] (newest
 * first): coefficients of [x_s0, x̂0_s0, x̂0_s1, …]. As diffusers' UniPCMultistepScheduler,
 * p = 2 takes ρ = 1/2 rather than solving its one condition.
 */
export function uniPCoefs(s: Schedule, t: number, prev: readonly number[]): number[] {
  const p = prev.length;
  const { rks, b, R, hPhi1, Bh, at, lead } = uniPcTerms(s, t, prev, p);
  const out = [lead, -at * hPhi1];
  if (p === 1) return out;
  const rho = p === 2 ? [0.5] : solveSmall(R(rks), b.slice(0, p - 1));
  // − α_t B(h) Σ_k ρ_k (x̂0_sk − x̂0_s0)/r_k
  rks.forEach((rk, k) => {
    const c = -at * Bh * rho[k] / rk;
    out.push(c);
    out[1] -= c;
  });
  return out;
}

/**
 * UniC-p (bh2): the corrected state at t after the step s0 → t that UniP-p took from x_s0, once
 * x̂0 at t is known. p = prev.length; coefficients of [x_s0, x̂0_s0, x̂0_s1, …, x̂0_t]. Costs
 * no evaluation: the x̂0 at t is the one the next predictor needs anyway (Zhao et al. 2023, §3.1).
 */
export function uniCCoefs(s: Schedule, t: number, prev: readonly number[]): number[] {
  const p = prev.length;
  const { rks, b, R, hPhi1, Bh, at, lead } = uniPcTerms(s, t, prev, p);
  const rho = p === 1 ? [0.5] : solveSmall(R([...rks, 1]), b);
  const out = [lead, -at * hPhi1];
  rks.forEach((rk, k) => {
    const c = -at * Bh * rho[k] / rk;
    out.push(c);
    out[1] -= c;
  });
  const ct = -at * Bh * rho[p - 1]; // ρ_p (x̂0_t − x̂0_s0)
  out.push(ct);
  out[1] -= ct;
  return out;
}

interface MultistepMethod {
  /** the highest order; the x̂0 history it keeps */
  order: number;
  /** the order of step k of S (0-based), before the warm-up limit k + 1 */
  orderOf: (k: number, S: number) => number;
  predict: (s: Schedule, t: number, prev: readonly number[]) => number[];
  correct?: (s: Schedule, t: number, prev: readonly number[]) => number[];
}

/**
 * The loop of the multistep solvers: one ε̂ evaluation per step, an x̂0 history of `order`
 * entries, and with a corrector the state the last predictor started from. onStep sees the
 * predicted state, the one the next evaluation reads.
 */
function sampleMultistep(
  s: Schedule,
  eps: EpsFn,
  xT: Tensor,
  o: FastOptions,
  m: MultistepMethod,
): Tensor {
  const tau = fastTimePoints(s, o), S = tau.length - 1;
  let x = xT; // the state at τ_k
  let from: Tensor | null = null; // the state at τ_{k−1} the last predictor started from
  let fromOrder = 0;
  const hist: Tensor[] = []; // x̂0 at τ_{k−1}, τ_{k−2}, … (newest first)
  const drop = (v: Tensor | null) => {
    if (v && v !== xT) v.dispose();
  };
  try {
    for (let k = 0; k < S; k++) {
      const t = tau[k], xk = x;
      const x0 = tidy(() => {
        const e = eps(xk, t);
        return lincomb([xk, e], [1 / aOf(s, t), -sigmaOf(s, t) / aOf(s, t)]);
      });
      if (m.correct && from) {
        const prev = tau.slice(k - fromOrder, k).reverse();
        x = lincomb([from, ...hist.slice(0, fromOrder), x0], m.correct(s, t, prev));
        drop(xk);
      }
      drop(from);
      from = null;
      hist.unshift(x0);
      while (hist.length > m.order) hist.pop()!.dispose();
      const order = Math.min(m.orderOf(k, S), k + 1);
      const prev = tau.slice(k - order + 1, k + 1).reverse();
      const base = x;
      x = lincomb([base, ...hist.slice(0, order)], m.predict(s, tau[k + 1], prev));
      if (o.constrain) x = constrained(o.constrain, x, tau[k + 1]);
      if (m.correct) {
        from = base;
        fromOrder = order;
      } else drop(base);
      o.onStep?.({ step: k + 1, total: S, t, x });
    }
  } finally {
    drop(from);
    for (const h of hist) h.dispose();
  }
  return x;
}

/**
 * DPM-Solver++(3M): data prediction, multistep order 3; its first step is the first-order one
 * (DDIM) and its second the 2M update, as the x̂0 history fills.
 */
export function sampleDpmSolver3m(
  s: Schedule,
  eps: EpsFn,
  xT: Tensor,
  o: MultistepOptions,
): Tensor {
  const lof = o.lowerOrderFinal ?? true;
  return sampleMultistep(s, eps, xT, o, {
    order: 3,
    orderOf: (k, S) => (lof && S < 15 ? Math.min(3, S - k) : 3),
    predict: dpmSolverPlusPlusCoefs,
  });
}

/**
 * UniPC: UniP-p predictor (default p = 2) and the UniC corrector, order p + 1 for one ε̂ per
 * step; as diffusers' UniPCMultistepScheduler (solver_type bh2), with lowerOrderFinal the step
 * k of S has order min(p, S − k), so the last is first-order, and the last state is not
 * corrected (that would cost an evaluation).
 */
export function sampleUniPc(s: Schedule, eps: EpsFn, xT: Tensor, o: UniPcOptions): Tensor {
  const p = o.order ?? 2;
  if (!Number.isInteger(p) || p < 1 || p > 3) throw new Error(`UniPC order ${p}: use 1 to 3`);
  const lof = o.lowerOrderFinal ?? true;
  return sampleMultistep(s, eps, xT, o, {
    order: p,
    orderOf: (k, S) => (lof ? Math.min(p, S - k) : p),
    predict: uniPCoefs,
    correct: o.corrector === false ? undefined : uniCCoefs,
  });
}

/** Display names of the samplers (the page, the evaluation tables). */
export const SAMPLER_LABELS: Record<SamplerName, string> = {
  ancestral: "ancestral (DDPM)",
  ddim: "DDIM",
  "dpm-solver": "DPM-Solver++(2M)",
  "dpm-solver-3m": "DPM-Solver++(3M)",
  unipc: "UniPC",
};

/** The fast samplers by name: x_T at the first time point (o.steps or o.timePoints) to the last. */
export const FAST_SAMPLERS: Record<
  Exclude<SamplerName, "ancestral">,
  (s: Schedule, eps: EpsFn, xT: Tensor, o: FastOptions) => Tensor
> = {
  ddim: sampleDdim,
  "dpm-solver": sampleDpmSolver,
  "dpm-solver-3m": sampleDpmSolver3m,
  unipc: sampleUniPc,
};
