// The schedule, thresholding and the three samplers against the fixtures.

import {
  chunk,
  concat,
  copy,
  lincomb,
  noGrad,
  pool,
  type Tensor,
  tensor,
  tidy,
} from "../kernels/mod.ts";
import { readSafetensors } from "../io/safetensors.ts";
import { concatConditions, type Condition, PixArt } from "../model/pixart.ts";
import { modelConfigFromJson } from "../model/checkpoint.ts";
import { Params } from "../model/params.ts";
import { posEmbed2d, timestepFreq } from "../model/embeddings.ts";
import { linearSchedule, timePoints } from "../diffusion/schedule.ts";
import { ancestralStep, sampleDdim, sampleDpmSolver } from "../diffusion/samplers.ts";
import { dynamicThreshold } from "../kernels/threshold.ts";
import { assertClose, maxAbs, ready } from "./helpers.ts";

await ready;

const FIX = new URL("./fixtures/", import.meta.url);
const load = (name: string) => readSafetensors(new URL(name, FIX));
const sched = load("schedule.safetensors").tensors;
const samp = load("samplers_tiny.safetensors").tensors;
const S = linearSchedule(1000);

function fx(map: typeof samp, name: string) {
  const e = map.get(name);
  if (!e) throw new Error(`fixture has no ${name}`);
  return e;
}

function expectClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string) {
  const e = maxAbs(got, want);
  if (!(e <= tol)) throw new Error(`${what}: max abs error ${e.toExponential(2)} > ${tol}`);
}

Deno.test("schedule, time points, t sinusoid and position table match the fixture", () => {
  expectClose(S.betas, fx(sched, "betas").data, 1e-6, "betas");
  expectClose(S.alphasCumprod, fx(sched, "alphas_cumprod").data, 1e-6, "alphas_cumprod");
  expectClose(S.postC1, fx(sched, "post_c1").data, 1e-6, "post_c1");
  expectClose(S.postC2, fx(sched, "post_c2").data, 1e-6, "post_c2");
  expectClose(S.varLarge, fx(sched, "var_large").data, 1e-6, "var_large");
  expectClose(timestepFreq([0, 1, 500, 999]), fx(sched, "t_freq").data, 1e-4, "t_freq");
  expectClose(posEmbed2d(64, 4), fx(sched, "pos_embed").data, 1e-6, "pos_embed");
  for (const n of [6, 10, 20]) {
    const want = Array.from(fx(sched, `tau_${n}`).data);
    const got = timePoints(1000, n);
    if (got.join() !== want.join()) throw new Error(`tau_${n}: ${got} != ${want}`);
  }
});

Deno.test("timePoints rejects S outside 1..T-1 with a clear error", () => {
  for (const bad of [0, 1000, 2.5]) {
    let msg = "";
    try {
      timePoints(1000, bad);
    } catch (e) {
      msg = (e as Error).message;
    }
    if (!msg.includes("1..999")) throw new Error(`S=${bad}: got '${msg}'`);
  }
});

function tinyModel(): PixArt {
  const f = load("tiny_stage2.safetensors");
  const P = new Params();
  for (const [name, e] of f.tensors) {
    if (name !== "pos_embed") P.set(name, tensor(e.data as Float32Array, e.shape));
  }
  return new PixArt(modelConfigFromJson(f.metadata.config), P);
}

function promptCond(): Condition {
  const tokens = fx(samp, "tokens").data as Int32Array;
  return {
    kind: "text",
    tokens,
    mask: Float32Array.from(tokens, (v) => (v ? 1 : 0)),
    drop: new Uint8Array(2),
  };
}

Deno.test("dynamic thresholding matches the fixture (s clamped below, inside, above)", async () => {
  const inp = fx(samp, "threshold_in");
  const { x, s } = tidy(() => dynamicThreshold(tensor(inp.data as Float32Array, inp.shape)));
  expectClose(await x.read(), fx(samp, "threshold_out").data, 1e-5, "threshold_out");
  expectClose(await s.read(), fx(samp, "threshold_s").data, 1e-5, "threshold_s");
  x.dispose();
  s.dispose();
});

Deno.test("dynamic thresholding of a sample holding NaN does not read what a buffer held before", async () => {
  const data = Float32Array.from({ length: 16 }, (_, i) => (i - 8) / 2);
  data[3] = NaN; // 15 ranked values: the 0.99 quantile point 14.85 has rank 14 (|−4|), not 15
  for (const before of [7, -100]) {
    const input = tensor(data, [1, 16]).keep();
    // freed last, this buffer is the next one its size class hands out: the selection's
    tensor(new Float32Array(64).fill(before), [64]).keep().dispose();
    const { x, s } = tidy(() => dynamicThreshold(input));
    // 4 + 0.85·(1 − 4): the missing rank reads the 1 it was filled with
    assertClose(await s.read(), [1.45], 1e-6, `a buffer that held ${before}`);
    for (const t of [input, x, s]) t.dispose();
  }
});

Deno.test("guided ε, DDIM and DPM-Solver++(2M) trajectories match the fixture", async () => {
  const model = tinyModel();
  const cond = promptCond();
  const xT = fx(samp, "x_T");
  const tau = Array.from(fx(samp, "tau_10").data);
  if (timePoints(1000, 10).join() !== tau.join()) throw new Error("tau_10 differs");
  {
    // the two branches at τ_0
    const [ec, eu] = tidy(() => {
      const x = tensor(xT.data as Float32Array, xT.shape);
      const c = model.forward(x, [999, 999], cond);
      const u = model.forward(x, [999, 999], model.nullCondition(2));
      return [c, u];
    });
    expectClose(await ec.read(), fx(samp, "first_eps_cond").data, 1e-4, "first_eps_cond");
    expectClose(await eu.read(), fx(samp, "first_eps_uncond").data, 1e-4, "first_eps_uncond");
    ec.dispose();
    eu.dispose();

    const eps = model.guidedEps(cond, 4.5);
    const states: Tensor[] = [];
    const x0 = tensor(xT.data as Float32Array, xT.shape).keep();
    const ddim = sampleDdim(S, eps, x0, {
      steps: 10,
      onStep: (s) => {
        if (s.step === 1) states.push(copy(s.x).keep());
      },
    });
    expectClose(await states[0].read(), fx(samp, "ddim_10_x1").data, 1e-3, "ddim_10_x1");
    expectClose(await ddim.read(), fx(samp, "ddim_10").data, 1e-3, "ddim_10");
    const traj: Tensor[] = [];
    const dpm = sampleDpmSolver(S, eps, x0, {
      steps: 10,
      onStep: (s) => traj.push(copy(s.x).keep()),
    });
    const want = fx(samp, "dpmpp2m_10_traj").data;
    const n = xT.data.length;
    for (let k = 0; k < traj.length; k++) {
      const w = want.subarray((k + 1) * n, (k + 2) * n);
      expectClose(await traj[k].read(), w, 1e-3, `dpmpp2m_10_traj[${k + 1}]`);
    }
    expectClose(await dpm.read(), fx(samp, "dpmpp2m_10").data, 1e-3, "dpmpp2m_10");
    for (const t of traj) t.dispose();
    for (const t of [...states, ddim, dpm, x0]) t.dispose();
  }
  model.dispose();
});

Deno.test("one ancestral step (t = 500 and t = 0) matches the fixture", async () => {
  const model = tinyModel();
  const cond = promptCond();
  const xin = fx(samp, "ancestral_in"), z = fx(samp, "ancestral_z");
  for (const t of [500, 0]) {
    const r = noGrad(() =>
      tidy(() => {
        const x = tensor(xin.data as Float32Array, xin.shape);
        const c = model.forward(x, [t, t], cond);
        const u = model.forward(x, [t, t], model.nullCondition(2));
        const eps = model.guidedEps(cond, 4.5)(x, t);
        const zt = tensor(z.data as Float32Array, z.shape);
        const step = ancestralStep(S, x, eps, t, zt, { p: 0.99, c: 1.7 });
        return { c, u, ...step };
      })
    );
    if (t === 500) {
      expectClose(await r.c.read(), fx(samp, "ancestral_eps_cond").data, 1e-4, "eps_cond");
      expectClose(await r.u.read(), fx(samp, "ancestral_eps_uncond").data, 1e-4, "eps_uncond");
      expectClose(await r.x0.read(), fx(samp, "ancestral_x0_pred").data, 1e-3, "x0_pred");
      expectClose(await r.x0t.read(), fx(samp, "ancestral_x0_thresholded").data, 1e-3, "x0_thr");
      expectClose(await r.s!.read(), fx(samp, "ancestral_s").data, 1e-3, "s");
      expectClose(await r.x.read(), fx(samp, "ancestral_out").data, 1e-3, "ancestral_out");
    } else {
      expectClose(await r.x.read(), fx(samp, "ancestral0_out").data, 1e-3, "ancestral0_out");
    }
    for (const v of [r.c, r.u, r.x, r.x0, r.x0t, r.s]) v?.dispose();
  }
  model.dispose();
});

Deno.test("guidedEps computes the caption path once, matches the uncached pass, frees it", async () => {
  const model = tinyModel();
  const cond = promptCond();
  const xT = fx(samp, "x_T");
  {
    const x = tensor(xT.data as Float32Array, xT.shape).keep();
    // the reference: both branches as one uncached forward
    const ref = tidy(() => {
      const both = concatConditions(cond, model.nullCondition(2));
      const out = model.forward(concat([x, x], 0), [700, 700, 700, 700], both);
      const [c, u] = chunk(out, 2, 0);
      return lincomb([u, c], [1 - 3, 3]);
    });
    const want = await ref.read();
    ref.dispose();
    const before = pool.stats.inUseBytes;
    const eps = model.guidedEps(cond, 3);
    const a = tidy(() => eps(x, 700));
    const b = tidy(() => eps(x, 700));
    expectClose(await a.read(), want, 1e-6, "first call");
    expectClose(await b.read(), want, 1e-6, "second call");
    a.dispose();
    b.dispose();
    const cached = pool.stats.inUseBytes - before;
    if (!(cached > 0)) throw new Error("no caption cache was kept");
    eps.dispose();
    if (pool.stats.inUseBytes !== before) {
      throw new Error(`${pool.stats.inUseBytes - before} bytes still in use after dispose`);
    }
    x.dispose();
  }
  model.dispose();
});

Deno.test("a guidance interval guides inside it and runs the conditional model alone outside", async () => {
  const model = tinyModel();
  const cond = promptCond();
  const xT = fx(samp, "x_T");
  {
    const x = tensor(xT.data as Float32Array, xT.shape).keep();
    const before = pool.stats.inUseBytes;
    const plain = model.guidedEps(cond, 3), cOnly = model.guidedEps(cond, 1);
    const limited = model.guidedEps(cond, 3, [300, 600]);
    for (const [t, inside] of [[700, false], [600, true], [450, true], [300, true], [200, false]]) {
      const want = tidy(() => (inside ? plain : cOnly)(x, t as number));
      const other = tidy(() => (inside ? cOnly : plain)(x, t as number));
      const got = tidy(() => limited(x, t as number));
      const w = await want.read(), g = await got.read();
      expectClose(g, w, 1e-6, `t = ${t}`);
      // the two branches differ, so the check above can tell them apart
      let d = 0;
      const o = await other.read();
      for (let i = 0; i < o.length; i++) d = Math.max(d, Math.abs(o[i] - w[i]));
      if (!(d > 1e-4)) throw new Error(`guided and conditional ε differ by only ${d} at t = ${t}`);
      for (const v of [want, other, got]) v.dispose();
    }
    for (const e of [plain, cOnly, limited]) e.dispose();
    if (pool.stats.inUseBytes !== before) {
      throw new Error(`${pool.stats.inUseBytes - before} bytes still in use after dispose`);
    }
    let msg = "";
    try {
      model.guidedEps(cond, 3, [600, 300]);
    } catch (e) {
      msg = (e as Error).message;
    }
    if (!msg.includes("lo ≤ hi")) throw new Error(`a reversed interval was accepted: ${msg}`);
    x.dispose();
  }
  model.dispose();
});
