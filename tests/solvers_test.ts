// The multistep solvers (DPM-Solver++(3M), UniPC) against exact properties: a plain-TypeScript
// float64 transcription of each update (written as diffusers writes it) on random inputs, the
// exact answer of a Gaussian toy (convergence with each solver's order as steps double),
// exactness of single steps on polynomial x̂0(λ), warm-up steps equal to the lower-order
// solvers, and the time-point lists image-to-image needs.

import { lincomb, mul, pool, type Tensor, tensor, tidy, unary } from "../kernels/mod.ts";
import { linearSchedule, type Schedule, timePoints } from "../diffusion/schedule.ts";
import {
  dpmSolverPlusPlusCoefs,
  type EpsFn,
  FAST_SAMPLERS,
  fastTimePoints,
  sampleDdim,
  sampleDpmSolver,
  sampleDpmSolver3m,
  sampleUniPc,
  uniCCoefs,
  uniPCoefs,
} from "../diffusion/samplers.ts";
import { maxAbs, rand, ready } from "./helpers.ts";

await ready;

const S = linearSchedule(1000);
const a = (t: number) => Math.sqrt(S.alphasCumprod[t]);
const sg = (t: number) => Math.sqrt(1 - S.alphasCumprod[t]);
const lam = (t: number) => Math.log(a(t) / sg(t));

// ---------------------------------------------------------------------------------------------
// the float64 reference: vectors as Float64Array, each update as diffusers' schedulers write it

type V = Float64Array;
type Eps64 = (x: V, t: number) => V;

function comb(vs: V[], cs: number[]): V {
  const o = new Float64Array(vs[0].length);
  vs.forEach((v, k) => v.forEach((x, i) => (o[i] += cs[k] * x)));
  return o;
}

function solve(A: number[][], b: number[]): number[] {
  // Gauss–Jordan, no pivoting needed for these Vandermonde systems of distinct points
  const n = b.length, M = A.map((r, i) => [...r, b[i]]);
  for (let c = 0; c < n; c++) {
    for (let r = 0; r < n; r++) {
      if (r === c) continue;
      const f = M[r][c] / M[c][c];
      for (let k = c; k <= n; k++) M[r][k] -= f * M[c][k];
    }
  }
  return M.map((r, i) => r[n] / r[i]);
}

const x0Of = (x: V, e: V, t: number) => comb([x, e], [1 / a(t), -sg(t) / a(t)]);

/**
 * DPM-Solver++ multistep of `order` (diffusers' DPMSolverMultistepScheduler, dpmsolver++, with
 * lower_order_final as there); `d2Scale` 1/2 gives the D2 of the DPM-Solver and diffusers code.
 */
function refDpm(
  eps: Eps64,
  xT: V,
  tau: readonly number[],
  order: number,
  lof: boolean,
  d2Scale = 1,
): V {
  let x = xT;
  const ms: V[] = [];
  const n = tau.length - 1;
  for (let k = 0; k < n; k++) {
    const s0 = tau[k], t = tau[k + 1];
    ms.unshift(x0Of(x, eps(x, s0), s0));
    const final = lof && k === n - 1 && n < 15, second = lof && k === n - 2 && n < 15;
    let ord = 3;
    if (order === 1 || k < 1 || final) ord = 1;
    else if (order === 2 || k < 2 || second) ord = 2;
    const h = lam(t) - lam(s0);
    const base = comb([x, ms[0]], [sg(t) / sg(s0), -a(t) * Math.expm1(-h)]);
    if (ord === 1) x = base;
    else if (ord === 2) {
      const r0 = (lam(s0) - lam(tau[k - 1])) / h;
      const D1 = comb([ms[0], ms[1]], [1 / r0, -1 / r0]);
      x = comb([base, D1], [1, -0.5 * a(t) * Math.expm1(-h)]);
    } else {
      const r0 = (lam(s0) - lam(tau[k - 1])) / h, r1 = (lam(tau[k - 1]) - lam(tau[k - 2])) / h;
      const D1_0 = comb([ms[0], ms[1]], [1 / r0, -1 / r0]);
      const D1_1 = comb([ms[1], ms[2]], [1 / r1, -1 / r1]);
      const D1 = comb([D1_0, D1_0, D1_1], [1, r0 / (r0 + r1), -r0 / (r0 + r1)]);
      // the second divided difference scaled to h²·x̂0''
      const D2 = comb([D1_0, D1_1], [2 * d2Scale / (r0 + r1), -2 * d2Scale / (r0 + r1)]);
      const em = Math.expm1(-h);
      x = comb([base, D1, D2], [1, a(t) * (em / h + 1), -a(t) * ((em + h) / h ** 2 - 0.5)]);
    }
  }
  return x;
}

/** UniPC bh2, data prediction (diffusers' UniPCMultistepScheduler step, p = solver_order). */
function refUniPc(eps: Eps64, xT: V, tau: readonly number[], p: number, lof: boolean, corr = true) {
  let x = xT, last: V | null = null, thisOrder = 0;
  const ms: V[] = [];
  const n = tau.length - 1;
  // rks, B(h) and b of both updates
  const terms = (h: number, rks: number[], order: number) => {
    const hh = -h, hPhi1 = Math.expm1(hh), Bh = Math.expm1(hh);
    let hPhiK = hPhi1 / hh - 1, fac = 1;
    const R: number[][] = [], b: number[] = [];
    for (let i = 1; i <= order; i++) {
      R.push(rks.map((r) => r ** (i - 1)));
      b.push(hPhiK * fac / Bh);
      fac *= i + 1;
      hPhiK = hPhiK / hh - 1 / fac;
    }
    return { hPhi1, Bh, R, b };
  };
  for (let k = 0; k < n; k++) {
    const mt = x0Of(x, eps(x, tau[k]), tau[k]);
    if (k > 0 && corr) {
      const t = tau[k], s0 = tau[k - 1], h = lam(t) - lam(s0);
      const rks: number[] = [], D1s: V[] = [];
      for (let i = 1; i < thisOrder; i++) {
        const rk = (lam(tau[k - 1 - i]) - lam(s0)) / h;
        rks.push(rk);
        D1s.push(comb([ms[i], ms[0]], [1 / rk, -1 / rk]));
      }
      rks.push(1);
      const { hPhi1, Bh, R, b } = terms(h, rks, thisOrder);
      const rhos = thisOrder === 1 ? [0.5] : solve(R, b);
      const D1t = comb([mt, ms[0]], [1, -1]);
      const res = comb([...D1s, D1t], rhos);
      x = comb([last!, ms[0], res], [sg(t) / sg(s0), -a(t) * hPhi1, -a(t) * Bh]);
    }
    ms.unshift(mt);
    const order = Math.min(lof ? Math.min(p, n - k) : p, k + 1);
    thisOrder = order;
    last = x;
    const s0 = tau[k], t = tau[k + 1], h = lam(t) - lam(s0);
    const rks: number[] = [], D1s: V[] = [];
    for (let i = 1; i < order; i++) {
      const rk = (lam(tau[k - i]) - lam(s0)) / h;
      rks.push(rk);
      D1s.push(comb([ms[i], ms[0]], [1 / rk, -1 / rk]));
    }
    rks.push(1);
    const { hPhi1, Bh, R, b } = terms(h, rks, order);
    x = comb([x, ms[0]], [sg(t) / sg(s0), -a(t) * hPhi1]);
    if (D1s.length) {
      const rhos = order === 2 ? [0.5] : solve(
        R.slice(0, -1).map((r) => r.slice(0, -1)),
        b.slice(0, -1),
      );
      x = comb([x, comb(D1s, rhos)], [1, -a(t) * Bh]);
    }
  }
  return x;
}

// ---------------------------------------------------------------------------------------------
// models: ε̂ on tensors and in float64

const N = 256;

/**
 * A random nonlinear ε-model on tensors and in float64: the one whose x̂0 is
 * p_t·x + q_t·v + r_t·silu(x), so that x̂0 stays of the size of x as a trained model's does.
 */
function randomModel(seed: number) {
  const v = Float64Array.from(rand(N, seed));
  const coef = Array.from({ length: 1000 }, (_, t) => {
    const [p, q, r] = rand(3, seed * 1000 + t + 7);
    // ε̂ = (x − a·x̂0)/σ
    return [(1 - a(t) * p) / sg(t), -a(t) * q / sg(t), -a(t) * r / sg(t)];
  });
  const v32 = tensor(Float32Array.from(v), [N]).keep();
  const eps: EpsFn = (x, t) => lincomb([x, v32, unary("silu", x)], coef[t]);
  const eps64: Eps64 = (x, t) => {
    const [p, q, r] = coef[t];
    return x.map((xi, i) => p * xi + q * v[i] + r * xi / (1 + Math.exp(-xi)));
  };
  return { eps, eps64, dispose: () => v32.dispose() };
}

/**
 * Data N(μ, diag(s²)): the exact ε̂(x, t) = σ_t (x − a_t μ)/(a_t² s² + σ_t²), and the exact
 * probability-flow ODE map, x_t − a_t μ = √((a_t² s² + σ_t²)/(a_u² s² + σ_u²))·(x_u − a_u μ).
 */
function gaussianModel() {
  const mu = Float64Array.from(rand(N, 11));
  const sd = Float64Array.from(rand(N, 12), (u) => 0.65 + 0.35 * u); // s in [0.3, 1]
  const mu32 = tensor(Float32Array.from(mu), [N]).keep();
  const c = (t: number) => sd.map((s) => sg(t) / (a(t) ** 2 * s * s + sg(t) ** 2));
  const eps: EpsFn = (x, t) =>
    mul(tensor(Float32Array.from(c(t)), [N]), lincomb([x, mu32], [1, -a(t)]));
  const exact = (x: V, from: number, to: number) =>
    x.map((xi, i) =>
      a(to) * mu[i] +
      Math.sqrt(
          (a(to) ** 2 * sd[i] ** 2 + sg(to) ** 2) / (a(from) ** 2 * sd[i] ** 2 + sg(from) ** 2),
        ) *
        (xi - a(from) * mu[i])
    );
  const eps64: Eps64 = (x, t) => {
    const ct = c(t);
    return x.map((xi, i) => ct[i] * (xi - a(t) * mu[i]));
  };
  return { eps, eps64, exact, dispose: () => mu32.dispose() };
}

type Sampler = (s: Schedule, eps: EpsFn, xT: Tensor, o: { timePoints: number[] }) => Tensor;

async function run(f: Sampler, eps: EpsFn, x: V, tau: number[]): Promise<Float32Array> {
  const xT = tensor(Float32Array.from(x), [N]).keep();
  const out = f(S, eps, xT, { timePoints: tau });
  const r = await out.read();
  out.dispose();
  xT.dispose();
  return r;
}

const rms = (u: ArrayLike<number>, v: ArrayLike<number>) => {
  let e = 0;
  for (let i = 0; i < u.length; i++) e += (u[i] - v[i]) ** 2;
  return Math.sqrt(e / u.length);
};

/** τ from `from` to `to` in n equal integer steps. */
const uniform = (from: number, to: number, n: number) =>
  Array.from({ length: n + 1 }, (_, k) => from - (from - to) * k / n);

// ---------------------------------------------------------------------------------------------

Deno.test("each solver matches its float64 reference on a random ε-model", async () => {
  const before = pool.stats.inUseBytes;
  const m = randomModel(3);
  const xT = Float64Array.from(rand(N, 5));
  // the default points (under 15 steps: lower order final acts), a tail, and uneven points
  const grids = [timePoints(1000, 7), timePoints(1000, 20).slice(6), [
    900,
    871,
    700,
    655,
    420,
    400,
    181,
    60,
    9,
    0,
  ]];
  const cases: [string, Sampler, (tau: number[]) => V][] = [
    ["3M", sampleDpmSolver3m, (g) => refDpm(m.eps64, xT, g, 3, true)],
    [
      "3M, all third order",
      (s, e, x, o) => sampleDpmSolver3m(s, e, x, { ...o, lowerOrderFinal: false }),
      (g) => refDpm(m.eps64, xT, g, 3, false),
    ],
    ["2M", sampleDpmSolver, (g) => refDpm(m.eps64, xT, g, 2, false)],
    ["DDIM", sampleDdim, (g) => refDpm(m.eps64, xT, g, 1, false)],
    ["UniPC", sampleUniPc, (g) => refUniPc(m.eps64, xT, g, 2, true)],
  ];
  for (const p of [1, 2, 3]) {
    for (const lof of [false, true]) {
      cases.push([
        `UniPC p=${p} lof=${lof}`,
        (s, e, x, o) => sampleUniPc(s, e, x, { ...o, order: p, lowerOrderFinal: lof }),
        (g) => refUniPc(m.eps64, xT, g, p, lof),
      ]);
    }
    cases.push([
      `UniP-${p} without the corrector`,
      (s, e, x, o) => sampleUniPc(s, e, x, { ...o, order: p, corrector: false }),
      (g) => refUniPc(m.eps64, xT, g, p, true, false),
    ]);
  }
  for (const g of grids) {
    for (const [name, f, ref] of cases) {
      const got = await run(f, m.eps, xT, g);
      const want = ref(g);
      // float32 against float64: relative to the result's size (steps to t = 0 extrapolate far)
      const e = maxAbs(got, want) / Math.max(1, ...want.map(Math.abs));
      if (!(e < 1e-5)) throw new Error(`${name} on ${g}: relative error ${e.toExponential(2)}`);
      // the reference is not trivially near: another solver lands measurably elsewhere
      if (name === "UniPC" && !(maxAbs(want, refDpm(m.eps64, xT, g, 3, true)) > 1e-3)) {
        throw new Error("UniPC and 3M agree: the random model is too tame to tell them apart");
      }
    }
  }
  m.dispose();
  if (pool.stats.inUseBytes !== before) {
    throw new Error(`${pool.stats.inUseBytes - before} bytes still in use`);
  }
});

Deno.test("each solver converges to the exact answer of a Gaussian toy with its order", async () => {
  const g = gaussianModel();
  const x0 = Float64Array.from(rand(N, 21));
  // from T − 1 to t = 359 in 5 … 40 equal steps: the region where the toy's x̂0(λ) is smooth
  // at these step sizes (toward t = 0 the time points are too coarse in λ for any order to show)
  const from = 999, to = 359;
  const want = g.exact(x0, from, to);
  const ns = [5, 10, 20, 40];
  const solvers: [string, Sampler, number][] = [
    ["DDIM", sampleDdim, 1],
    ["DPM-Solver++(2M)", sampleDpmSolver, 2],
    [
      "DPM-Solver++(3M)",
      (s, e, x, o) => sampleDpmSolver3m(s, e, x, { ...o, lowerOrderFinal: false }),
      3,
    ],
    ["UniPC", (s, e, x, o) => sampleUniPc(s, e, x, { ...o, lowerOrderFinal: false }), 3],
    [
      "UniP-2 alone",
      (s, e, x, o) => sampleUniPc(s, e, x, { ...o, lowerOrderFinal: false, corrector: false }),
      2,
    ],
  ];
  const order = (errs: number[]) => errs.slice(1).map((e, i) => Math.log2(errs[i] / e));
  for (const [name, f, p] of solvers) {
    const errs: number[] = [];
    for (const n of ns) errs.push(rms(await run(f, g.eps, x0, uniform(from, to, n)), want));
    // the observed order from the last two doublings, above the float32 floor
    const q = order(errs).slice(-2);
    if (!q.every((v) => v > p - 0.3 && v < p + 0.6)) {
      throw new Error(
        `${name}: errors ${errs.map((e) => e.toExponential(2))} give orders ${
          q.map((v) => v.toFixed(2))
        }, want ${p}`,
      );
    }
  }
  // the D2 of the published 3M code, half as large, leaves a second-order method
  const half = ns.map((n) => rms(refDpm(g.eps64, x0, uniform(from, to, n), 3, false, 0.5), want));
  const q = order(half).slice(-2);
  if (!q.every((v) => v < 2.6)) {
    throw new Error(`3M with D2/2: orders ${q.map((v) => v.toFixed(2))}, expected about 2`);
  }
  g.dispose();
});

Deno.test("one step is exact when x̂0 is a polynomial in λ of the step's degree", () => {
  // the exact step of x_t = (σ_t/σ_s)·x_s + σ_t ∫ e^λ x̂0(λ) dλ for x̂0 = q(λ), q of degree ≤ 2
  const prim = (l: number, c: number[]) =>
    // ∫ e^λ (c0 + c1 λ + c2 λ²) dλ = e^λ (c0 + c1(λ − 1) + c2(λ² − 2λ + 2))
    Math.exp(l) * (c[0] + c[1] * (l - 1) + c[2] * (l * l - 2 * l + 2));
  const q = (l: number, c: number[]) => c[0] + c[1] * l + c[2] * l * l;
  const xs = 0.37;
  const step = (coefs: number[], pts: number[], c: number[]) =>
    coefs[0] * xs + pts.reduce((acc, p, i) => acc + coefs[i + 1] * q(lam(p), c), 0);
  const exactStep = (s0: number, t: number, c: number[]) =>
    sg(t) / sg(s0) * xs + sg(t) * (prim(lam(t), c) - prim(lam(s0), c));
  const lin = [0.3, -0.8, 0], quad = [0.3, -0.8, 0.45];
  // uneven points, as the integer time points give
  const [t, s0, s1, s2] = [380, 455, 560, 610];
  const cases: [string, number[], number[], number[], boolean][] = [
    // name, coefficients, the points whose x̂0 they weigh, q, exact?
    ["DPM-Solver++ 1", dpmSolverPlusPlusCoefs(S, t, [s0]), [s0], [0.3, 0, 0], true],
    ["DPM-Solver++ 3, linear", dpmSolverPlusPlusCoefs(S, t, [s0, s1, s2]), [s0, s1, s2], lin, true],
    ["DPM-Solver++ 3", dpmSolverPlusPlusCoefs(S, t, [s0, s1, s2]), [s0, s1, s2], quad, true],
    ["DPM-Solver++ 2 (midpoint)", dpmSolverPlusPlusCoefs(S, t, [s0, s1]), [s0, s1], lin, false],
    ["UniP-1", uniPCoefs(S, t, [s0]), [s0], [0.3, 0, 0], true],
    ["UniP-3", uniPCoefs(S, t, [s0, s1, s2]), [s0, s1, s2], quad, true],
    ["UniP-2 (ρ = 1/2)", uniPCoefs(S, t, [s0, s1]), [s0, s1], lin, false],
    ["UniC-2", uniCCoefs(S, t, [s0, s1]), [s0, s1, t], quad, true],
    ["UniC-3", uniCCoefs(S, t, [s0, s1, s2]), [s0, s1, s2, t], quad, true],
    ["UniC-1 (ρ = 1/2)", uniCCoefs(S, t, [s0]), [s0, t], lin, false],
  ];
  // with three points both integrate the one quadratic through them: the same update, which
  // pins DPM-Solver++(3)'s D2 by an independent derivation (UniPC's order conditions)
  const d3 = dpmSolverPlusPlusCoefs(S, t, [s0, s1, s2]), u3 = uniPCoefs(S, t, [s0, s1, s2]);
  if (!(maxAbs(d3, u3) < 1e-12)) throw new Error(`DPM-Solver++ 3 ${d3} vs UniP-3 ${u3}`);
  for (const [name, coefs, pts, c, exact] of cases) {
    if (coefs.length !== pts.length + 1) throw new Error(`${name}: ${coefs.length} coefficients`);
    const err = Math.abs(step(coefs, pts, c) - exactStep(s0, t, c));
    if (exact && !(err < 1e-12)) throw new Error(`${name}: off by ${err.toExponential(2)}`);
    if (!exact && !(err > 1e-6)) throw new Error(`${name}: exact, unlike its order`);
  }
});

Deno.test("a multistep solver's first steps are those of the lower-order solvers", async () => {
  const m = randomModel(8);
  const xT = tensor(rand(N, 9), [N]).keep();
  const states = async (
    f: (o: { steps: number; onStep: (s: { x: Tensor }) => void }) => Tensor,
  ) => {
    const got: Promise<Float32Array>[] = [];
    const out = f({ steps: 10, onStep: (s) => got.push(s.x.read()) });
    const r = await Promise.all(got);
    out.dispose();
    return r;
  };
  const ddim = await states((o) => sampleDdim(S, m.eps, xT, o));
  const m2 = await states((o) => sampleDpmSolver(S, m.eps, xT, o));
  const m3 = await states((o) => sampleDpmSolver3m(S, m.eps, xT, o));
  const uni = await states((o) => sampleUniPc(S, m.eps, xT, o));
  const same = (u: Float32Array, v: Float32Array, what: string, tol: number) => {
    const e = maxAbs(u, v);
    if (!(e <= tol)) throw new Error(`${what}: differ by ${e.toExponential(2)}`);
  };
  // DDIM folds x̂0 into one combination of x and ε̂: equal up to float32 rounding
  same(m2[0], ddim[0], "2M step 1 vs DDIM", 1e-5);
  same(m3[0], m2[0], "3M step 1 vs 2M step 1", 0);
  same(m3[1], m2[1], "3M step 2 vs 2M step 2", 0);
  same(uni[0], m2[0], "UniPC step 1 vs 2M step 1", 0);
  // and then they part
  for (const [u, what] of [[m3[2], "3M"], [uni[1], "UniPC"]] as const) {
    const d = maxAbs(u, what === "3M" ? m2[2] : m2[1]);
    if (!(d > 1e-4)) throw new Error(`${what} follows 2M after its warm-up (${d})`);
  }
  xT.dispose();
  m.dispose();
});

Deno.test("fast samplers take a list of time points; a DDIM tail continues the full run", async () => {
  const m = randomModel(13);
  const xT = tensor(rand(N, 14), [N]).keep();
  const tau = timePoints(1000, 12);
  const mid: Tensor[] = [];
  const full = sampleDdim(S, m.eps, xT, {
    steps: 12,
    onStep: (s) => {
      if (s.step === 5) mid.push(tidy(() => lincomb([s.x], [1])).keep());
    },
  });
  // from the state at τ_5 over τ_5 … τ_12: DDIM keeps no history, so it lands where the full run did
  const steps: number[] = [];
  const tail = sampleDdim(S, m.eps, mid[0], {
    timePoints: tau.slice(5),
    onStep: (s) => steps.push(s.step, s.total, s.t),
  });
  const e = maxAbs(await tail.read(), await full.read());
  if (!(e === 0)) throw new Error(`tail and full run differ by ${e}`);
  const want = tau.slice(5, 12).flatMap((t, k) => [k + 1, 7, t]);
  if (steps.join() !== want.join()) throw new Error(`steps reported ${steps}, want ${want}`);
  for (const v of [full, tail, mid[0]]) v.dispose();
  // every fast sampler accepts a tail and reports its own step count
  for (const [name, f] of Object.entries(FAST_SAMPLERS)) {
    let last = 0;
    const out = f(S, m.eps, xT, { timePoints: tau.slice(3), onStep: (s) => (last = s.total) });
    if (last !== 9) throw new Error(`${name}: total ${last}, want 9`);
    out.dispose();
  }
  for (
    const [o, msg] of [
      [{ timePoints: [500] }, "at least 2"],
      [{ timePoints: [500, 500, 0] }, "strictly decreasing"],
      [{ timePoints: [1000, 0] }, "0..999"],
      [{ timePoints: [10, 2.5] }, "integers"],
      [{ timePoints: [900, 0], steps: 3 }, "disagrees"],
      [{}, "steps or timePoints"],
    ] as const
  ) {
    let got = "";
    try {
      fastTimePoints(S, o);
    } catch (err) {
      got = (err as Error).message;
    }
    if (!got.includes(msg)) throw new Error(`${JSON.stringify(o)}: '${got}'`);
  }
  xT.dispose();
  m.dispose();
});
